# Apps (deployments): creating, changing or removing an app needs one
# approval from app-approvers. Members of apps.trusted_groups (data
# apps/data.json) may create and change apps without approval, but never
# remove one.
package approval.policies.apps

import data.approval.lib
import data.apps

# The first condition is indexed: for a call that names no apps, OPA skips
# this rule without evaluating it.
decision := _decision if "apps" in input.request.segments

_decision := {
	"action": "allow",
	"policy": "apps",
	"reason": "trusted release managers change apps without approval",
} if {
	input.request.method in {"POST", "PUT", "PATCH"}
	lib.member_of(apps.trusted_groups)
} else := {
	"action": "require_approval",
	"policy": "apps",
	"resource": lib.object,
	"approvers": lib.with_after_hours([{"group": "app-approvers", "required": 1}]),
	"reason": "app deployments reach every managed device: a second admin approves",
}
