# Collections: a DELETE of a whole collection (DELETE /devices) is refused,
# with or without approval. Objects are deleted one by one, each judged by
# its own policy, so one call never removes 5,000 of them.
package approval.policies.collections

decision := {
	"action": "deny",
	"policy": "collections",
	"reason": "a whole collection is never deleted at once: delete its objects one by one",
} if {
	input.request.method == "DELETE" # indexed: skipped for other methods
	count(input.request.segments) == 1
}
