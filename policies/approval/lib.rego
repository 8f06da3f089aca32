# Helpers the policies share: the path's segments, the object a call is
# about, group membership, and business hours.
package approval.lib

import data.config

# segments of the path, in lower case: "/Devices/7/wipe" -> ["devices",
# "7", "wipe"]. The gateway hands them to policies (input.request.segments)
# from the normalized path (dot segments, duplicate slashes, escaped
# letters resolved); routers such as Express's match paths
# case-insensitively, so the policies do too.
segments := input.request.segments

# object is the resource a call is about: the first two path segments
# ("devices/7"). A create (a POST to the collection itself) is keyed by the
# name it asks for, "apps/new:crm", so that two different new objects wait
# side by side while a second request for the same name finds the first;
# when the call names no single name, it is the collection ("apps"), which
# one pending create holds for all. In lower case, so that "/Apps/1" or
# "CRM" cannot open a second pending request beside "/apps/1" or "crm".
object := concat("", [segments[0], "/new:", lower(_new_name)]) if {
	input.request.method == "POST"
	count(segments) == 1
} else := concat("/", array.slice(segments, 0, 2))

# _new_name is the one name a create asks for: a string of at most 200
# characters, and the only value of "name" in the body and the query.
_new_name := n if {
	[n] := [v | some v in values("name")]
	is_string(n)
	n != ""
	count(n) <= 200
}

# under(kind) holds for calls to /kind and below, and for calls that reach
# a kind nested under another object (/devices/7/apps creates an app). As a
# decision's first condition, `"apps" in input.request.segments` says the
# same and is indexed (see policies/README.md, "Fast policies").
under(kind) if kind in segments

# position(kind) is the index of the first segment naming kind.
position(kind) := min({i | some i, s in segments; s == kind})

# values(name) are the values a backend may take for field name: a JSON
# object body's member of that name in any case (Go's encoding/json
# matches names so), each value of a form field, and each value of the
# query parameter (Rails, Laravel, Spring and Flask merge the query into
# the body's fields). A JSON array counts as each of its items.
values(name) := {v |
	is_object(input.request.body)
	some k, x in input.request.body
	lower(k) == lower(name)
	some v in _items(x)
} | {v |
	some k, vs in input.request.query
	lower(k) == lower(name)
	some v in vs
}

_items(x) := x if is_array(x)

_items(x) := [x] if not is_array(x)

# unreadable_body holds when the call has a body the gateway does not parse
# (a type other than JSON or a form, or a multipart part that is not
# text): policies cannot see what it asks, so they must not let it pass on
# what they cannot see.
unreadable_body if {
	input.request.body == null
	input.request.body_size > 0
}

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
