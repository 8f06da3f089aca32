# The decision the gateway evaluates (data.approval.decision). Each policy
# under approval/policies/ defines `decision` for the calls it covers; this
# file combines them: a deny wins, then a park, then an allow. A call no
# policy covers needs one approval from config.default_approvers, so a new
# endpoint is never open by accident.
package approval

import data.approval.lib
import data.approval.policies
import data.config

# Only each policy's decision is evaluated (naming policies[name].decision
# with name unbound), never a policy's whole document; the order is the
# policies' names.
_by_name[name] := policies[name].decision

_decisions := [_by_name[name] | some name in sort(object.keys(_by_name))]

# The decisions by action, each a rule so it is evaluated once per call.
_denies := [d | some d in _decisions; d.action == "deny"]

_parks := [d | some d in _decisions; d.action == "require_approval"]

_allows := [d | some d in _decisions; d.action == "allow"]

decision := _denies[0] if {
	count(_denies) > 0
} else := object.union(_park, _break_glass) if {
	_park
	break_glass_allowed
} else := _park if {
	_park
} else := _allows[0] if {
	count(_allows) > 0
} else := {
	"action": "require_approval",
	"policy": "default",
	"resource": lib.object,
	"approvers": lib.with_after_hours(config.default_approvers),
	"reason": "no access policy covers this call; every change needs a second admin",
}

# _park is the first park, marked dry_run when its policy is listed in
# config.dry_run_policies: the call then passes, and the gateway records
# what would have been asked. A call a policy would allow parks too when
# its body is one the policies cannot read: what they cannot see, they do
# not let pass.
_park := object.union(_parks[0], {"dry_run": true}) if {
	_parks[0].policy in config.dry_run_policies
} else := _parks[0] if {
	count(_parks) > 0
} else := {
	"action": "require_approval",
	"policy": _allows[0].policy,
	"resource": lib.object,
	"approvers": lib.with_after_hours(config.default_approvers),
	"reason": sprintf("the body is %s, which the gateway does not read: a second admin approves", [_content_type]),
} if {
	count(_allows) > 0
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
