package approval.policies.devices_test

import data.approval.policies.devices

_in_hours := "2026-11-02T10:00:00Z"

test_corporate_wipe_passes if {
	devices.decision == {
		"action": "allow",
		"policy": "devices",
		"reason": "device 1 is corporate-owned: wipe needs no approval",
	} with input as {
		"request": {"method": "POST", "path": "/devices/1/wipe", "segments": ["devices", "1", "wipe"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

test_personal_wipe_needs_approval if {
	devices.decision == {
		"action": "require_approval",
		"policy": "devices",
		"resource": "devices/2",
		"approvers": [{"group": "device-approvers", "required": 1}],
		"reason": "the device is not known to be corporate-owned: a second admin approves",
	} with input as {
		"request": {"method": "POST", "path": "/devices/2/wipe", "segments": ["devices", "2", "wipe"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

test_unknown_device_needs_approval if {
	devices.decision.action == "require_approval" with input as {
		"request": {"method": "POST", "path": "/devices/99/retire", "segments": ["devices", "99", "retire"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

test_ownership_comes_from_data if {
	devices.decision.action == "allow" with input as {
		"request": {"method": "POST", "path": "/devices/99/retire", "segments": ["devices", "99", "retire"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
		with data.devices.ownership as {"99": "corporate"}
}

test_deleting_a_corporate_device_needs_approval if {
	devices.decision.resource == "devices/1" with input as {
		"request": {"method": "DELETE", "path": "/devices/1", "segments": ["devices", "1"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

# A device nested under another object (/tenants/acme/devices/1/wipe) is
# found where "devices" is.
test_nested_device_is_found if {
	devices.decision == {
		"action": "allow",
		"policy": "devices",
		"reason": "device 1 is corporate-owned: wipe needs no approval",
	} with input as {
		"request": {"method": "POST", "path": "/tenants/acme/devices/1/wipe", "segments": ["tenants", "acme", "devices", "1", "wipe"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}

# The resource stays the library's object, the first two segments: one
# pending request per tenant, coarser than per device, never finer.
test_nested_personal_device_needs_approval if {
	devices.decision == {
		"action": "require_approval",
		"policy": "devices",
		"resource": "tenants/acme",
		"approvers": [{"group": "device-approvers", "required": 1}],
		"reason": "the device is not known to be corporate-owned: a second admin approves",
	} with input as {
		"request": {"method": "POST", "path": "/tenants/acme/devices/2/wipe", "segments": ["tenants", "acme", "devices", "2", "wipe"]},
		"identity": {"subject": "alice", "groups": []},
		"time": _in_hours,
	}
}
