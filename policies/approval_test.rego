package approval_test

import data.approval

test_mutating_call_needs_one_approver if {
	approval.decision == {
		"action": "require_approval",
		"policy": "default",
		"resource": "devices/7/wipe",
		"approvers": [{"group": "approvers", "required": 1}],
		"reason": "changes to the admin API need a second admin's approval",
	} with input as {
		"request": {"method": "POST", "path": "/devices/7/wipe"},
		"identity": {"subject": "alice", "groups": ["admins"]},
	}
}

test_delete_names_the_object if {
	approval.decision.resource == "apps/42" with input as {
		"request": {"method": "DELETE", "path": "/apps/42"},
		"identity": {"subject": "alice", "groups": []},
	}
}

test_other_methods_are_denied if {
	approval.decision == {
		"action": "deny",
		"policy": "default",
		"reason": "no access policy matched this call",
	} with input as {
		"request": {"method": "TRACE", "path": "/apps"},
		"identity": {"subject": "alice", "groups": []},
	}
}

test_anonymous_is_denied if {
	approval.decision.action == "deny" with input as {
		"request": {"method": "POST", "path": "/apps"},
		"identity": {"subject": "", "groups": []},
	}
}
