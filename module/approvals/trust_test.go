package approvals_test

import (
	"net/http"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
)

// TestClientTrustHeadersNeverReachTheBackend: the headers that tell a
// backend a call was approved are removed from every call the gateway
// forwards (a read, an allowed call, a dry run, a break-glass call), also
// when spelt with underscores; only a replay carries them, set by the
// gateway.
func TestClientTrustHeadersNeverReachTheBackend(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "allow", "policy": "open"} if input.request.path == "/open"

decision := {"action": "require_approval", "policy": "rollout", "resource": "dry",
	"approvers": [{"group": "approvers", "required": 1}], "dry_run": true} if input.request.path == "/dry"

decision := {"action": "require_approval", "policy": "glass", "resource": "glass",
	"approvers": [{"group": "approvers", "required": 1}], "break_glass": true} if input.request.path == "/glass"

decision := {"action": "require_approval", "policy": "parked", "resource": "parked",
	"approvers": [{"group": "approvers", "required": 1}]} if input.request.path == "/parked"
`), nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	spoof := []string{
		"Approval-Approved-By", "bob, carol", "Approval-Request-Id", "0190c5a2-0000-7000-8000-000000000000",
		"Idempotency-Key", "0190c5a2-0000-7000-8000-000000000000", "Approval-Attestation", "eyJhbGciOiJub25lIn0.e30.",
		"Approval_Approved_By", "bob", "approval_request_id", "x",
		"Approval-Justification", "because",
	}
	h.Expect(h.Do("GET", "/read", "", "", spoof...), http.StatusOK, "")
	h.Expect(h.Do("POST", "/open", alice, "{}", spoof...), http.StatusCreated, "")
	h.Expect(h.Do("POST", "/dry", alice, "{}", spoof...), http.StatusCreated, "")
	h.Expect(h.Do("POST", "/glass", alice, "{}", spoof...), http.StatusCreated, "")
	id := h.Expect(h.Do("POST", "/parked", alice, "{}", spoof...), http.StatusAccepted, "").Str("id")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")

	if len(h.Backend.Calls()) != 5 {
		t.Fatalf("the backend saw %d calls, want 5", len(h.Backend.Calls()))
	}
	for _, c := range h.Backend.Calls()[:4] {
		for k := range c.Header {
			switch http.CanonicalHeaderKey(k) {
			case "Approval-Approved-By", "Approval-Request-Id", "Idempotency-Key", "Approval-Attestation",
				"Approval_approved_by", "Approval_request_id":
				t.Errorf("%s %s reached the backend with the client's %s: %q", c.Method, c.Path, k, c.Header[k])
			}
		}
	}
	replay := h.Backend.Calls()[4]
	if replay.Header.Get("Approval-Approved-By") != "bob" || replay.Header.Get("Approval-Request-Id") != id ||
		replay.Header.Get("Idempotency-Key") != id || replay.Header.Get("Approval_approved_by") != "" {
		t.Fatalf("the replay carried %v", replay.Header)
	}
}
