# The corpus's access policy, on top of the shipped library's helpers
# (approval/lib.rego): a policy that reads methods, paths and bodies, as
# the ones admins write do.
package approval

import data.approval.lib

_park(policy, approvers) := {
	"action": "require_approval",
	"policy": policy,
	"resource": lib.object,
	"approvers": approvers,
	"reason": sprintf("%s %s needs approval", [input.request.method, input.request.path]),
}

# The call asks to wipe a device: any value of a "wiped" field a backend
# may read (in any case, from a JSON body, a form or the query) but one
# that plainly says no.
_wipes if {
	some v in lib.values("wiped")
	not v in {false, "false", 0, "0", null, ""}
}

# Only rbac-admins may even ask to delete a role; every other role change
# needs two approvers. Wiping or deleting a device needs a device approver;
# other device calls (a POST is a check-in) pass. App changes need an app
# approver. A body the gateway does not read needs an approver. The rest
# passes.
decision := {"action": "deny", "policy": "rbac", "reason": "only rbac-admins delete roles"} if {
	lib.under("roles")
	input.request.method == "DELETE"
	not lib.member_of({"rbac-admins"})
} else := _park("rbac", [{"group": "approvers", "required": 2}]) if {
	lib.under("roles")
} else := _park("devices", [{"group": "device-approvers", "required": 1}]) if {
	lib.under("devices")
	input.request.method in {"PUT", "PATCH"}
	_wipes
} else := _park("devices", [{"group": "device-approvers", "required": 1}]) if {
	lib.under("devices")
	input.request.method == "DELETE"
} else := _park("unreadable", [{"group": "approvers", "required": 1}]) if {
	lib.unreadable_body
} else := _park("apps", [{"group": "app-approvers", "required": 1}]) if {
	lib.under("apps")
	input.request.method in {"PUT", "PATCH", "DELETE"}
} else := {"action": "allow", "policy": "open", "reason": "other changes pass"}
