package approval_test

import data.approval

_in_hours := "2026-11-02T10:00:00Z"

_after_hours := "2026-11-02T22:00:00Z"

test_uncovered_call_needs_default_approver if {
	approval.decision == {
		"action": "require_approval",
		"policy": "default",
		"resource": "printers/4",
		"approvers": [{"group": "approvers", "required": 1}],
		"reason": "no access policy covers this call; every change needs a second admin",
	} with input as {
		"request": {"method": "DELETE", "path": "/printers/4", "segments": ["printers", "4"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _in_hours,
	}
}

test_covered_call_takes_the_policy_decision if {
	approval.decision == {
		"action": "require_approval",
		"policy": "devices",
		"resource": "devices/2",
		"approvers": [{"group": "device-approvers", "required": 1}, {"group": "on-call-approvers", "required": 1}],
		"reason": "the device is not known to be corporate-owned: a second admin approves",
	} with input as {
		"request": {"method": "POST", "path": "/devices/2/wipe", "segments": ["devices", "2", "wipe"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _after_hours,
	}
}

test_allow_passes if {
	approval.decision.action == "allow" with input as {
		"request": {"method": "POST", "path": "/devices/1/wipe", "segments": ["devices", "1", "wipe"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _in_hours,
	}
}

test_deny_wins_over_park_and_allow if {
	approval.decision == {"action": "deny", "policy": "freeze", "reason": "change freeze"} with input as {
		"request": {"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _in_hours,
	}
		with data.approval.policies.freeze.decision as {"action": "deny", "policy": "freeze", "reason": "change freeze"}
}

test_park_wins_over_allow if {
	approval.decision.policy == "apps" with input as {
		"request": {"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _in_hours,
	}
		with data.approval.policies.open.decision as {"action": "allow", "policy": "open"}
}

test_break_glass_marks_a_park if {
	approval.decision == {
		"action": "require_approval",
		"policy": "rbac",
		"resource": "roles/1",
		"approvers": [{"group": "rbac-approvers", "required": 1}, {"group": "security", "required": 1}],
		"reason": "break-glass: the caller's emergency access passes this call at once; it is recorded and audited",
		"break_glass": true,
	} with input as {
		"request": {"method": "DELETE", "path": "/roles/1", "segments": ["roles", "1"]},
		"identity": {"subject": "oncall", "groups": [], "claims": {"break_glass": true}},
		"time": _in_hours,
	}
}

test_break_glass_claim_must_be_true if {
	not approval.decision.break_glass with input as {
		"request": {"method": "DELETE", "path": "/roles/1", "segments": ["roles", "1"]},
		"identity": {"subject": "mallory", "groups": [], "claims": {"break_glass": "yes"}},
		"time": _in_hours,
	}
}

test_break_glass_does_not_lift_a_deny if {
	approval.decision.action == "deny" with input as {
		"request": {"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"]},
		"identity": {"subject": "oncall", "groups": [], "claims": {"break_glass": true}},
		"time": _in_hours,
	}
		with data.approval.policies.freeze.decision as {"action": "deny", "policy": "freeze", "reason": "change freeze"}
}

test_dry_run_policies_from_data if {
	approval.decision == {
		"action": "require_approval",
		"policy": "scripts",
		"resource": "scripts/3",
		"approvers": [{"group": "script-approvers", "required": 1}],
		"reason": "scripts run as administrator on devices: a second admin approves",
		"dry_run": true,
	} with input as {
		"request": {"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"]},
		"identity": {"subject": "alice", "groups": [], "claims": {}},
		"time": _in_hours,
	}
		with data.config.dry_run_policies as ["scripts"]
}
