# Scripts: deploying or changing a script needs one approval from
# script-approvers; a script that targets every device ("target" starting
# with "all") is high risk and needs two approvers from two different
# groups.
package approval.policies.scripts

import data.approval.lib

# The targets a backend may read: the body's "target" in any case, a
# form's, the query's.
_targets := lib.values("target")

_high_risk if {
	some t in _targets
	startswith(lower(t), "all")
}

# A target that is not a string cannot be judged: treated as everything.
_high_risk if {
	some t in _targets
	not is_string(t)
}

# A body the policies cannot read may target every device.
_high_risk if lib.unreadable_body

_approvers := [{"group": "script-approvers", "required": 1}, {"group": "security", "required": 1}] if {
	_high_risk
} else := [{"group": "script-approvers", "required": 1}]

decision := {
	"action": "require_approval",
	"policy": "scripts",
	"resource": lib.object,
	"approvers": lib.with_after_hours(_approvers),
	"reason": _reason,
} if "scripts" in input.request.segments # indexed: skipped for other calls

_reason := "a script for every device is high risk: script-approvers and security approve" if {
	_high_risk
} else := "scripts run as administrator on devices: a second admin approves"
