package approvals

import (
	"net/http"
	"testing"
)

// TestOnePersonInAnotherCase: tokens whose subject differs from another's
// only in case are one person for the API too: no self-approval, no second
// approval toward a quorum, one list of their own requests and one
// pending cap.
func TestOnePersonInAnotherCase(t *testing.T) {
	h := newHarness(t, writePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "two", "resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 2}]}
`), func(o *Options) { o.MaxPendingPerIdentity = 2 })
	alice, upperAlice := h.token("alice", "approvers"), h.token("ALICE", "approvers")
	bob, capBob, carol := h.token("bob", "approvers"), h.token("Bob", "approvers"), h.token("carol", "approvers")

	id := h.park(alice, "DELETE", "/roles/2", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", upperAlice, ""), http.StatusForbidden, "self_approval")
	h.approve(bob, id)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", capBob, ""), http.StatusConflict, "already_approved")
	rec := h.approve(carol, id)
	if rec.str("status") != "approved" {
		t.Fatalf("status %s", rec.str("status"))
	}
	// ALICE is the requester: she sees the request as hers and completes it.
	mine := h.expect(h.do("GET", "/.approvals/api/v1/requests?view=mine", upperAlice, ""), http.StatusOK, "")
	if reqs, _ := mine.body["requests"].([]any); len(reqs) != 1 {
		t.Fatalf("ALICE's own requests: %s", mine.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", upperAlice, ""), http.StatusOK, "")

	// The pending cap counts both spellings.
	h.park(alice, "DELETE", "/apps/1", "")
	h.park(upperAlice, "DELETE", "/apps/2", "")
	h.expect(h.do("DELETE", "/apps/3", alice, "", "Approval-Justification", "j"), http.StatusTooManyRequests, CodeTooManyPending)
}

// TestCaseSensitiveSubjects: with CaseSensitiveSubjects, ids that differ
// only in case are different identities.
func TestCaseSensitiveSubjects(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.CaseSensitiveSubjects = true })
	id := h.park(h.token("u-1a"), "DELETE", "/apps/1", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.token("U-1A", "approvers"), ""), http.StatusOK, "")
}
