# Helpers the policies share: the path's segments, the object a call is
# about, group membership, and business hours.
package approval.lib

import data.config

# segments of the path: "/devices/7/wipe" -> ["devices", "7", "wipe"]
segments := split(trim(input.request.path, "/"), "/")

# object is the resource a call is about: the first two path segments
# ("devices/7"), or the collection ("apps") for a create.
object := concat("/", array.slice(segments, 0, 2))

# under(kind) holds for calls to /kind and below.
under(kind) if segments[0] == kind

# member_of(groups) holds when the caller is in any of groups.
member_of(groups) if {
	some g in input.identity.groups
	g in groups
}

_now := time.parse_rfc3339_ns(input.time)

_hours := config.business_hours

# in_business_hours holds on a business day between start and end hour, in
# the configured time zone.
in_business_hours if {
	time.weekday([_now, _hours.timezone]) in _hours.days
	[hour, _, _] := time.clock([_now, _hours.timezone])
	hour >= _hours.start_hour
	hour < _hours.end_hour
}

# with_after_hours adds one approver from the after-hours group to
# approvers outside business hours.
with_after_hours(approvers) := array.concat(approvers, [{"group": _hours.after_hours_group, "required": 1}]) if {
	not in_business_hours
} else := approvers
