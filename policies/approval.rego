# The default access policy: every protected (mutating) call needs one
# approval from a member of the "approvers" group. Copy the policies of this
# directory's README to scope it by resource type, identity or object.
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
