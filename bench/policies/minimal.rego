# A one-rule policy for the load benchmark (scenario B′) and the decision
# microbenchmark (module/policy BenchmarkLibrary): it separates the
# gateway's own cost from the cost of the policies it evaluates.
package approval

decision := {
	"action": "deny",
	"policy": "collections",
	"reason": "a whole collection is never deleted at once",
} if {
	input.request.method == "DELETE"
	count(split(trim(input.request.path, "/"), "/")) == 1
} else := {
	"action": "allow",
	"policy": "releases",
	"reason": "trusted release managers change apps without approval",
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
