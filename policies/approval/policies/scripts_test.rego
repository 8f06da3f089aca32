package approval.policies.scripts_test

import data.approval.policies.scripts

_in_hours := "2026-11-02T10:00:00Z"

test_script_needs_one_approver if {
	scripts.decision == {
		"action": "require_approval",
		"policy": "scripts",
		"resource": "scripts/3",
		"approvers": [{"group": "script-approvers", "required": 1}],
		"reason": "scripts run as administrator on devices: a second admin approves",
	} with input as {
		"request": {"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": {"target": "finance-laptops"}},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

test_script_for_every_device_needs_two_groups if {
	scripts.decision == {
		"action": "require_approval",
		"policy": "scripts",
		"resource": "scripts",
		"approvers": [{"group": "script-approvers", "required": 1}, {"group": "security", "required": 1}],
		"reason": "a script for every device is high risk: script-approvers and security approve",
	} with input as {
		"request": {"method": "POST", "path": "/scripts", "segments": ["scripts"], "body": {"target": "all-laptops"}},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

test_script_without_body_is_not_high_risk if {
	scripts.decision.approvers == [{"group": "script-approvers", "required": 1}] with input as {
		"request": {"method": "DELETE", "path": "/scripts/3", "segments": ["scripts", "3"], "body": null},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}
