package approval.policies.rbac_test

import data.approval.policies.rbac

test_role_change_needs_two_groups if {
	rbac.decision == {
		"action": "require_approval",
		"policy": "rbac",
		"resource": "roles/1",
		"approvers": [{"group": "rbac-approvers", "required": 1}, {"group": "security", "required": 1}],
		"reason": "role changes decide who may do everything else: rbac-approvers and security approve",
	} with input as {
		"request": {"method": "POST", "path": "/roles/1/assignments", "segments": ["roles", "1", "assignments"]},
		"identity": {"subject": "alice", "groups": ["rbac-approvers"]},
		"time": "2026-11-02T10:00:00Z",
	}
}
