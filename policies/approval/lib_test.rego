package approval.lib_test

import data.approval.lib

test_object_is_the_first_two_segments if {
	lib.object == "devices/7" with input as {"request": {"path": "/devices/7/wipe"}}
	lib.object == "apps" with input as {"request": {"path": "/apps"}}
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
