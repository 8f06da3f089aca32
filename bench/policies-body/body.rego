# A short policy that reads the body, for the load benchmark (scenario B″):
# next to B′'s one rule on the method and the groups, it adds the cost of
# reading and parsing a small JSON body for the policy. It sits apart from
# bench/policies because the gateway loads every policy of a directory.
package approval

decision := {
	"action": "deny",
	"policy": "collections",
	"reason": "a whole collection is never deleted at once",
} if {
	input.request.method == "DELETE"
	count(split(trim(input.request.path, "/"), "/")) == 1
} else := {
	"action": "require_approval",
	"policy": "wipes",
	"resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 1}],
	"reason": "a PATCH of a device that sets wiped needs a second admin",
} if {
	input.request.method == "PATCH"
	input.request.segments[0] == "devices"
	input.request.body.wiped
} else := {
	"action": "allow",
	"policy": "releases",
	"reason": "trusted release managers change apps and devices without approval",
} if {
	input.request.method in {"POST", "PUT", "PATCH"}
	"app-release-managers" in input.identity.groups
} else := {
	"action": "require_approval",
	"policy": "default",
	"resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 1}],
	"reason": "every other change needs a second admin",
}
