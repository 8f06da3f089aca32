package approvals_test

import (
	"net/http"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
)

// TestShippedLibraryKeysCreatesByName parks creates under the shipped
// library: two different new apps wait side by side, and only a second
// request for the same name (in any case) is refused as pending.
func TestShippedLibraryKeysCreatesByName(t *testing.T) {
	a := approvalstest.New(t, "../../policies", nil)
	alice := a.Token("alice", "it-ops")
	create := func(body string) testkit.Answer {
		return a.Do("POST", "/apps", alice, body, "Content-Type", "application/json", "Approval-Justification", "new app")
	}
	crm := a.Expect(create(`{"name":"crm"}`), http.StatusAccepted, "")
	if crm.Str("resource") != "apps/new:crm" {
		t.Fatalf("create keyed %q, want apps/new:crm", crm.Str("resource"))
	}
	a.Expect(create(`{"name":"payroll-2"}`), http.StatusAccepted, "")
	again := a.Expect(create(`{"name":"CRM"}`), http.StatusConflict, approvals.CodePendingExists)
	if got := again.Body["error"].(map[string]any)["request_id"]; got != crm.Str("id") {
		t.Fatalf("409 names request %v, want %s", got, crm.Str("id"))
	}
	if n := len(a.Backend.Mutating()); n != 0 {
		t.Fatalf("%d creates reached the backend before approval", n)
	}
}
