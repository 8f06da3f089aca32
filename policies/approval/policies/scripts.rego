# Scripts: deploying or changing a script needs one approval from
# script-approvers; a script that targets every device ("target" starting
# with "all") is high risk and needs two approvers from two different
# groups.
package approval.policies.scripts

import data.approval.lib

_high_risk if startswith(input.request.body.target, "all")

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
} if {
	lib.under("scripts")
}

_reason := "a script for every device is high risk: script-approvers and security approve" if {
	_high_risk
} else := "scripts run as administrator on devices: a second admin approves"
