package approval.policies.collections_test

import data.approval
import data.approval.policies.collections

test_collection_delete_is_denied if {
	approval.decision == {
		"action": "deny",
		"policy": "collections",
		"reason": "a whole collection is never deleted at once: delete its objects one by one",
	} with input as {
		"request": {"method": "DELETE", "path": "/Devices/", "segments": ["devices"], "body": null, "body_size": 0},
		"identity": {"subject": "alice", "groups": ["device-approvers"], "claims": {}},
		"time": "2026-11-02T10:00:00Z",
	}
}

test_object_delete_is_not_this_policys if {
	not collections.decision with input as {
		"request": {"method": "DELETE", "path": "/devices/7", "segments": ["devices", "7"]},
		"identity": {"subject": "alice", "groups": []},
		"time": "2026-11-02T10:00:00Z",
	}
}
