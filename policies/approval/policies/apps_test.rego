package approval.policies.apps_test

import data.approval.policies.apps

_in_hours := "2026-11-02T10:00:00Z"

test_change_needs_app_approver if {
	apps.decision == {
		"action": "require_approval",
		"policy": "apps",
		"resource": "apps/42",
		"approvers": [{"group": "app-approvers", "required": 1}],
		"reason": "app deployments reach every managed device: a second admin approves",
	} with input as {
		"request": {"method": "PUT", "path": "/apps/42", "segments": ["apps", "42"]},
		"identity": {"subject": "alice", "groups": ["it-ops"]},
		"time": _in_hours,
	}
}

test_trusted_group_changes_without_approval if {
	apps.decision == {
		"action": "allow",
		"policy": "apps",
		"reason": "trusted release managers change apps without approval",
	} with input as {
		"request": {"method": "POST", "path": "/apps", "segments": ["apps"]},
		"identity": {"subject": "rita", "groups": ["app-release-managers"]},
		"time": _in_hours,
	}
}

test_trusted_group_still_needs_approval_to_delete if {
	apps.decision.action == "require_approval" with input as {
		"request": {"method": "DELETE", "path": "/apps/42", "segments": ["apps", "42"]},
		"identity": {"subject": "rita", "groups": ["app-release-managers"]},
		"time": _in_hours,
	}
}

test_trusted_groups_come_from_data if {
	apps.decision.action == "allow" with input as {
		"request": {"method": "PATCH", "path": "/apps/42", "segments": ["apps", "42"]},
		"identity": {"subject": "sam", "groups": ["mobile-team"]},
		"time": _in_hours,
	}
		with data.apps.trusted_groups as ["mobile-team"]
}

test_other_paths_are_not_covered if {
	not apps.decision with input as {
		"request": {"method": "POST", "path": "/scripts", "segments": ["scripts"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}
