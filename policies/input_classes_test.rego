# What the shipped library does with each class of input an attacker may
# try: paths in another case, PUT for PATCH, nested routes, bodies the
# gateway does not read. Each asserts the whole decision.
package approval.input_classes_test

import data.approval

_in_hours := "2026-11-02T10:00:00Z"

_alice := {"subject": "alice", "groups": ["it-ops"], "claims": {}}

_rita := {"subject": "rita", "groups": ["app-release-managers"], "claims": {}}

_decide(request, who) := d if {
	d := approval.decision with input as {"request": request, "identity": who, "time": _in_hours}
}

test_a_path_in_another_case_is_the_same_route if {
	lower_case := _decide({"method": "DELETE", "path": "/roles/2", "segments": ["roles", "2"]}, _alice)
	lower_case.policy == "rbac"
	_decide({"method": "DELETE", "path": "/Roles/2", "segments": ["roles", "2"]}, _alice) == lower_case
	_decide({"method": "DELETE", "path": "/ROLES/2/", "segments": ["roles", "2"]}, _alice) == lower_case
	_decide({"method": "POST", "path": "/DEVICES/1/WIPE", "segments": ["devices", "1", "wipe"]}, _alice).action == "allow"
}

test_put_is_judged_like_patch if {
	_decide({"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"], "body": {"version": "2"}}, _rita) == _decide({"method": "PATCH", "path": "/apps/1", "segments": ["apps", "1"], "body": {"version": "2"}}, _rita)
	_decide({"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"], "body": {"version": "2"}}, _alice) == _decide({"method": "PATCH", "path": "/apps/1", "segments": ["apps", "1"], "body": {"version": "2"}}, _alice)
	_decide({"method": "PUT", "path": "/devices/2", "segments": ["devices", "2"], "body": {"wiped": true}}, _alice) == _decide({"method": "PATCH", "path": "/devices/2", "segments": ["devices", "2"], "body": {"wiped": true}}, _alice)
	all_targets := _decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": {"target": "all-laptops"}}, _alice)
	count(all_targets.approvers) == 2
	_decide({"method": "PATCH", "path": "/scripts/3", "segments": ["scripts", "3"], "body": {"target": "all-laptops"}}, _alice) == all_targets
}

test_a_nested_route_is_guarded_by_its_collection if {
	# Creating an app under another object is an app change: the apps
	# policy judges it, not the default.
	_decide({"method": "POST", "path": "/printers/4/apps", "segments": ["printers", "4", "apps"], "body": {"name": "x"}}, _alice) == {
		"action": "require_approval",
		"policy": "apps",
		"resource": "printers/4",
		"approvers": [{"group": "app-approvers", "required": 1}],
		"reason": "app deployments reach every managed device: a second admin approves",
	}

	# An assignment nested under a user is a role change.
	_decide({"method": "POST", "path": "/users/7/roles", "segments": ["users", "7", "roles"], "body": {"role": "admin"}}, _alice).policy == "rbac"

	# Under a device, the device's rules hold too: a park wins over the
	# apps policy's allow for a trusted release manager.
	_decide({"method": "POST", "path": "/devices/2/apps", "segments": ["devices", "2", "apps"], "body": {"name": "x"}}, _rita).action == "require_approval"

	# A wipe is the last segment after the device, nothing after it.
	_decide({"method": "POST", "path": "/devices/1/wipe/now", "segments": ["devices", "1", "wipe", "now"]}, _alice).action == "require_approval"
}

test_an_unreadable_body_parks_on_a_guarded_route if {
	# A trusted release manager's app change passes with a JSON body ...
	_decide({"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"], "body": {"version": "2"}, "body_size": 17, "content_type": "application/json"}, _rita).action == "allow"

	# ... and parks when the body is of a type the gateway does not read.
	_decide({"method": "PUT", "path": "/apps/1", "segments": ["apps", "1"], "body": null, "body_size": 17, "content_type": "text/plain"}, _rita) == {
		"action": "require_approval",
		"policy": "apps",
		"resource": "apps/1",
		"approvers": [{"group": "approvers", "required": 1}],
		"reason": "the body is text/plain, which the gateway does not read: a second admin approves",
	}

	# A corporate wipe with a body nobody can read parks too.
	_decide({"method": "POST", "path": "/devices/1/wipe", "segments": ["devices", "1", "wipe"], "body": null, "body_size": 3, "content_type": ""}, _alice).reason == "the body is of no declared type, which the gateway does not read: a second admin approves"

	# A script whose body cannot be read is treated as targeting everything.
	count(_decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": null, "body_size": 40, "content_type": "application/octet-stream"}, _alice).approvers) == 2
}

test_a_field_is_read_as_backends_read_it if {
	# Two approver groups for a script targeting every device, however the
	# target is spelt or sent.
	bodies := [
		{"target": "all-laptops"},
		{"Target": "all-laptops"},
		{"TARGET": "ALL-laptops"},
		{"target": ["all-laptops"]},
		{"target": {"all": true}},
		{"target": 1},
	]
	every body in bodies {
		count(_decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": body}, _alice).approvers) == 2
	}

	# A form's field, and a query parameter merged into the fields.
	count(_decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": {"target": ["all-laptops"]}, "content_type": "application/x-www-form-urlencoded"}, _alice).approvers) == 2
	count(_decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "query": {"target": ["all"]}, "body": {"name": "x"}}, _alice).approvers) == 2

	# A narrow target needs one group.
	count(_decide({"method": "PUT", "path": "/scripts/3", "segments": ["scripts", "3"], "body": {"target": "finance-laptops"}}, _alice).approvers) == 1
}
