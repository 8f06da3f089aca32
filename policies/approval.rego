# The decision the gateway evaluates (data.approval.decision). Each policy
# under approval/policies/ defines `decision` for the calls it covers; this
# file combines them: a deny wins, then a park, then an allow. A call no
# policy covers needs one approval from config.default_approvers, so a new
# endpoint is never open by accident.
package approval

import data.approval.lib
import data.approval.policies
import data.config

# _first is [rank, name] of the decision that wins: a deny (0) before a
# park (1) before an allow (2), and among equals the policy whose name sorts
# first. Only each policy's decision is evaluated (never a policy's whole
# document), each once; a policy whose decision is undefined, or whose
# action is none of the three, takes no part.
_first := min({[_rank[d.action], name] |
	some name
	d := policies[name].decision
})

_rank := {"deny": 0, "require_approval": 1, "allow": 2}

# The cases in the order calls mostly take them: an allow, a deny, a park.
decision := policies[_first[1]].decision if {
	_first[0] == 2
	not lib.unreadable_body
} else := policies[_first[1]].decision if {
	_first[0] == 0
} else := object.union(_park, _break_glass) if {
	_park
	break_glass_allowed
} else := _park if {
	_park
} else := {
	"action": "require_approval",
	"policy": "default",
	"resource": lib.object,
	"approvers": lib.with_after_hours(config.default_approvers),
	"reason": "no access policy covers this call; every change needs a second admin",
}

# _park is the winning park, marked dry_run when its policy is listed in
# config.dry_run_policies: the call then passes, and the gateway records
# what would have been asked. A call a policy would allow parks too when
# its body is one the policies cannot read: what they cannot see, they do
# not let pass.
_park := object.union(p, {"dry_run": true}) if {
	_first[0] == 1
	p := policies[_first[1]].decision
	p.policy in config.dry_run_policies
} else := policies[_first[1]].decision if {
	_first[0] == 1
} else := {
	"action": "require_approval",
	"policy": policies[_first[1]].decision.policy,
	"resource": lib.object,
	"approvers": lib.with_after_hours(config.default_approvers),
	"reason": sprintf("the body is %s, which the gateway does not read: a second admin approves", [_content_type]),
} if {
	_first[0] == 2
	lib.unreadable_body
}

_content_type := input.request.content_type if {
	input.request.content_type != ""
} else := "of no declared type"

_break_glass := {
	"break_glass": true,
	"reason": "break-glass: the caller's emergency access passes this call at once; it is recorded and audited",
}

# break_glass_allowed is defined in break_glass.rego; without that file
# nobody can break glass.
default break_glass_allowed := false
