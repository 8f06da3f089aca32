# The policy of the core tests: every judged call needs one approval from a
# member of "approvers"; the resource is the path without its leading slash.
package approval

# Fail closed: a call that no rule below matches is denied.
default decision := {
	"action": "deny",
	"policy": "default",
	"reason": "no access policy matched this call",
}

decision := {
	"action": "require_approval",
	"policy": "default",
	"resource": _resource,
	"approvers": [{"group": "approvers", "required": 1}],
	"reason": "changes to the admin API need a second admin's approval",
} if {
	input.request.method in {"POST", "PUT", "PATCH", "DELETE"}
	input.identity.subject != ""
}

# One pending request per object: the path names it ("/apps/42" -> "apps/42").
_resource := trim_prefix(input.request.path, "/")
