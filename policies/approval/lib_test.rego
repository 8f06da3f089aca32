package approval.lib_test

import data.approval.lib

test_object_is_the_first_two_segments if {
	lib.object == "devices/7" with input as {"request": {"path": "/devices/7/wipe", "segments": ["devices", "7", "wipe"]}}
	lib.object == "apps" with input as {"request": {"path": "/apps", "segments": ["apps"]}}
}

test_a_create_is_keyed_by_the_name_it_asks_for if {
	lib.object == "apps/new:crm" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": "crm"}, "query": {}}}
	lib.object == "apps/new:payroll" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": "payroll"}, "query": {}}}

	# The same name in another case or spelling of the member is the same key.
	lib.object == "apps/new:crm" with input as {"request": {"method": "POST", "path": "/Apps/", "segments": ["apps"], "body": {"NAME": "CRM"}, "query": {}}}

	# A form or the query names it as well as JSON does.
	lib.object == "apps/new:crm" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": null, "query": {"name": ["crm"]}}}
}

test_a_create_without_one_name_holds_the_collection if {
	# No name, two names (body and query disagree, or an array), a name
	# that is not a string, or too long: the collection, which one pending
	# create holds for all.
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {}, "query": {}}}
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": "a"}, "query": {"name": ["b"]}}}
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": ["a", "b"]}, "query": {}}}
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": 7}, "query": {}}}
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": ""}, "query": {}}}
	lib.object == "apps" with input as {"request": {"method": "POST", "path": "/apps", "segments": ["apps"], "body": {"name": concat("", [x | some _ in numbers.range(1, 201); x := "a"])}, "query": {}}}

	# Only a POST to the collection itself is a create.
	lib.object == "apps/crm" with input as {"request": {"method": "PUT", "path": "/apps/crm", "segments": ["apps", "crm"], "body": {"name": "x"}, "query": {}}}
	lib.object == "apps" with input as {"request": {"method": "PUT", "path": "/apps", "segments": ["apps"], "body": {"name": "x"}, "query": {}}}
}

test_business_hours if {
	lib.in_business_hours with input as {"time": "2026-11-02T08:00:00Z"} # Monday 08:00
	not lib.in_business_hours with input as {"time": "2026-11-02T18:00:00Z"} # Monday 18:00
	not lib.in_business_hours with input as {"time": "2026-11-07T10:00:00Z"} # Saturday
}

test_after_hours_adds_an_approver if {
	lib.with_after_hours([{"group": "a", "required": 1}]) == [
		{"group": "a", "required": 1},
		{"group": "on-call-approvers", "required": 1},
	] with input as {"time": "2026-11-02T22:00:00Z"}
	lib.with_after_hours([{"group": "a", "required": 1}]) == [{"group": "a", "required": 1}] with input as {"time": "2026-11-02T10:00:00Z"}
}

test_time_zone_from_data if {
	# 07:30 UTC is 08:30 in Berlin (winter time): inside business hours there.
	lib.in_business_hours with input as {"time": "2026-11-02T07:30:00Z"}
		with data.config.business_hours.timezone as "Europe/Berlin"
}

test_segments_match_in_any_case if {
	lib.segments == ["devices", "7", "wipe"] with input as {"request": {"path": "/DEVICES/7/Wipe/", "segments": ["devices", "7", "wipe"]}}
	lib.object == "apps/a1" with input as {"request": {"path": "/Apps/A1", "segments": ["apps", "a1"]}}
	lib.under("apps") with input as {"request": {"path": "/APPS", "segments": ["apps"]}}
}

test_nested_collections_are_under_their_kind if {
	lib.under("apps") with input as {"request": {"path": "/devices/7/apps", "segments": ["devices", "7", "apps"]}}
	lib.position("apps") == 2 with input as {"request": {"path": "/devices/7/apps", "segments": ["devices", "7", "apps"]}}
	not lib.under("roles") with input as {"request": {"path": "/devices/7/apps", "segments": ["devices", "7", "apps"]}}
}

test_unreadable_body if {
	lib.unreadable_body with input as {"request": {"body": null, "body_size": 12, "content_type": "text/plain"}}
	not lib.unreadable_body with input as {"request": {"body": null, "body_size": 0}}
	not lib.unreadable_body with input as {"request": {"body": {"a": 1}, "body_size": 7}}
}
