package approvals_test

import (
	"net/http"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
)

// TestOnePersonInAnotherCase: tokens whose subject differs from another's
// only in case are one person for the API too: no self-approval, no second
// approval toward a quorum, one list of their own requests and one
// pending cap.
func TestOnePersonInAnotherCase(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "two", "resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 2}]}
`), func(o *approvalstest.Options) { o.MaxPendingPerIdentity = 2 })
	alice, upperAlice := h.Token("alice", "approvers"), h.Token("ALICE", "approvers")
	bob, capBob, carol := h.Token("bob", "approvers"), h.Token("Bob", "approvers"), h.Token("carol", "approvers")

	id := h.Park(alice, "DELETE", "/roles/2", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", upperAlice, ""), http.StatusForbidden, "self_approval")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", capBob, ""), http.StatusConflict, "already_approved")
	rec := h.Approve(carol, id)
	if rec.Str("status") != "approved" {
		t.Fatalf("status %s", rec.Str("status"))
	}
	// ALICE is the requester: she sees the request as hers and completes it.
	mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=mine", upperAlice, ""), http.StatusOK, "")
	if reqs, _ := mine.Body["requests"].([]any); len(reqs) != 1 {
		t.Fatalf("ALICE's own requests: %s", mine.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", upperAlice, ""), http.StatusOK, "")

	// The pending cap counts both spellings.
	h.Park(alice, "DELETE", "/apps/1", "")
	h.Park(upperAlice, "DELETE", "/apps/2", "")
	h.Expect(h.Do("DELETE", "/apps/3", alice, "", "Approval-Justification", "j"), http.StatusTooManyRequests, approvals.CodeTooManyPending)
}

// TestCaseSensitiveSubjects: with CaseSensitiveSubjects, ids that differ
// only in case are different identities.
func TestCaseSensitiveSubjects(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.CaseSensitiveSubjects = true })
	id := h.Park(h.Token("u-1a"), "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("U-1A", "approvers"), ""), http.StatusOK, "")
}
