# RBAC roles and their assignments: every change is high risk (it changes
# who may do everything else) and needs two approvers from two different
# groups: rbac-approvers and security.
package approval.policies.rbac

import data.approval.lib

decision := {
	"action": "require_approval",
	"policy": "rbac",
	"resource": lib.object,
	"approvers": lib.with_after_hours([
		{"group": "rbac-approvers", "required": 1},
		{"group": "security", "required": 1},
	]),
	"reason": "role changes decide who may do everything else: rbac-approvers and security approve",
} if "roles" in input.request.segments # indexed: skipped for other calls
