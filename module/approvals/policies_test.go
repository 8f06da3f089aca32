package approvals_test

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
)

const dryRunPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "scripts", "resource": input.request.path,
	"approvers": [{"group": "script-approvers", "required": 1}], "dry_run": true,
}
`

const breakGlassPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "rbac", "resource": "roles/1",
	"approvers": [{"group": "security", "required": 1}], "break_glass": true,
	"reason": "break-glass",
} if input.identity.claims.break_glass == true

else := {
	"action": "require_approval", "policy": "rbac", "resource": "roles/1",
	"approvers": [{"group": "security", "required": 1}],
}
`

func TestHealthAndEvaluate(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	dir := testkit.WritePolicy(t, splitPolicy)
	h := approvalstest.New(t, dir, nil)
	admin, alice := h.Token("audrey", "auditors"), h.Token("alice")
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/health", admin, ""), http.StatusOK, "")
	if res.Str("status") != "ok" || res.Str("store") != "ok" || !strings.Contains(res.Raw, dir) {
		t.Fatalf("health %s", res.Raw)
	}
	// The details are for admins; the load balancers' check says the status only.
	h.Expect(h.Do("GET", "/.approvals/api/v1/health", "", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	h.Expect(h.Do("GET", "/.approvals/api/v1/health", alice, ""), http.StatusForbidden, approvals.CodeForbidden)
	healthz := func() testkit.Answer {
		res := h.Expect(h.Do("GET", "/.approvals/healthz", "", ""), http.StatusOK, "")
		if len(res.Body) != 1 || res.Str("status") != "ok" {
			t.Fatalf("healthz says more than its status: %s", res.Raw)
		}
		return res
	}
	healthz()
	stop := testkit.Run(t, h.Svc.RunSweeper)
	testkit.WaitFor(t, func() bool {
		return strings.Contains(h.Do("GET", "/.approvals/api/v1/health", admin, "").Raw, `"sweeper":true`)
	})
	stop()
	if res := h.Do("GET", "/.approvals/api/v1/health", admin, ""); !strings.Contains(res.Raw, `"sweeper":false`) {
		t.Fatalf("health after resigning: %s", res.Raw)
	}
	// A broken policy file: the old policies stay, health says why.
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package approval\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.Opts.Policies.Reload(context.Background()); err == nil {
		t.Fatal("a broken policy reloaded")
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/health", admin, ""), http.StatusOK, "")
	if res.Str("status") != "degraded" || !strings.Contains(res.Raw, "p.rego:4") {
		t.Fatalf("health after a broken reload: %s", res.Raw)
	}
	if res := healthz(); strings.Contains(res.Raw, "p.rego") {
		t.Fatalf("healthz shows the reload error: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/roles", alice, ""), http.StatusForbidden, approvals.CodeDenied) // the old policy still decides

	body := `{"input": {"request": {"method": "POST", "path": "/open"}, "identity": {"subject": "x", "groups": []}}}`
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/policies/evaluate", admin, body), http.StatusOK, "")
	if res.Body["decision"].(map[string]any)["action"] != "allow" {
		t.Fatalf("evaluate: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/policies/evaluate", alice, body), http.StatusForbidden, approvals.CodeForbidden)
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("evaluate sent something")
	}
	h.Etcd.Close()
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/health", admin, ""), http.StatusServiceUnavailable, "")
	if res.Str("store") != "unavailable" {
		t.Fatalf("health with the store down: %s", res.Raw)
	}
	res = h.Expect(h.Do("GET", "/.approvals/healthz", "", ""), http.StatusServiceUnavailable, "")
	if len(res.Body) != 1 || res.Str("status") != "unavailable" {
		t.Fatalf("healthz with the store down: %s", res.Raw)
	}
}

const freezePolicy = `package approval.policies.freeze

decision := {"action": "deny", "policy": "freeze", "reason": data.runtime.freeze.why} if {
	startswith(input.request.path, "/apps")
}
`

// TestRuntimePolicyProtectsItself proposes a runtime policy on one gateway,
// has a second identity approve it on another gateway sharing the store,
// and sees it in force on both.
func TestRuntimePolicyProtectsItself(t *testing.T) {
	a := approvalstest.New(t, "../../policies", nil)
	b := approvalstest.NewOn(t, a.Cli, a.Etcd, "../../policies", nil)
	alice := a.Token("alice", "auditors")
	bob := a.Token("bob", "auditors")
	eve := a.Token("eve", "it-ops")
	const policies = "/.approvals/api/v1/policies/"

	put := func(tok, body string, headers ...string) testkit.Answer {
		return a.Do("PUT", policies+"freeze", tok, body, headers...)
	}
	change, _ := json.Marshal(map[string]any{"rego": freezePolicy, "data": map[string]any{"why": "quarter close"}})
	a.Expect(put(eve, string(change), "Approval-Justification", "x"), http.StatusForbidden, approvals.CodeForbidden)
	a.Expect(put(alice, string(change)), http.StatusPreconditionRequired, approvals.CodeJustificationRequired)
	broken, _ := json.Marshal(map[string]any{"rego": "package approval.policies.freeze\n\ndecision := {"})
	res := a.Expect(put(alice, string(broken), "Approval-Justification", "x"), http.StatusUnprocessableEntity, approvals.CodeInvalidPolicy)
	if !strings.Contains(res.Raw, "runtime/freeze.rego") {
		t.Fatalf("validation error does not name the module: %s", res.Raw)
	}
	wrongPkg, _ := json.Marshal(map[string]any{"rego": "package approval\n\nx := 1\n"})
	a.Expect(put(alice, string(wrongPkg), "Approval-Justification", "x"), http.StatusUnprocessableEntity, approvals.CodeInvalidPolicy)

	res = a.Expect(put(alice, string(change), "Approval-Justification", "freeze app changes for the quarter close"), http.StatusAccepted, "")
	id := res.Str("id")
	if res.Str("policy") != "gateway-policies" || res.Str("resource") != "policies/freeze" {
		t.Fatalf("parked change: %s", res.Raw)
	}
	// Not in force before approval.
	a.Expect(a.Do("POST", "/apps", eve, "", "Approval-Justification", "j"), http.StatusAccepted, "")
	a.Expect(a.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", alice, ""), http.StatusForbidden, record.CodeSelfApproval)
	b.Expect(b.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"agreed with finance"}`, "Content-Type", "application/json"), http.StatusOK, "")
	res = a.Expect(a.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	if !strings.Contains(res.Raw, `"version":1`) {
		t.Fatalf("complete answered %s", res.Raw)
	}

	// In force on both gateways.
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, a)
			dumpLogs(t, b)
		}
	})
	for _, g := range []*approvalstest.Harness{a, b} {
		testkit.WaitFor(t, func() bool {
			return g.Do("PUT", "/apps/1", eve, "", "Approval-Justification", "j").Code() == approvals.CodeDenied
		})
	}
	res = b.Expect(b.Do("PUT", "/apps/2", eve, "", "Approval-Justification", "j"), http.StatusForbidden, approvals.CodeDenied)
	if res.Body["error"].(map[string]any)["message"] != "quarter close" {
		t.Fatalf("deny reason from the runtime data: %s", res.Raw)
	}
	if len(a.Backend.Mutating())+len(b.Backend.Mutating()) != 0 {
		t.Fatal("a policy change or a frozen call reached a backend")
	}
	res = b.Expect(b.Do("GET", policies+"freeze", eve, ""), http.StatusOK, "")
	v := res.Body["versions"].([]any)[0].(map[string]any)
	if v["proposed_by"] != "alice" || v["approved_by"].([]any)[0] != "bob" || v["request_id"] != id {
		t.Fatalf("version does not keep who proposed and approved: %s", res.Raw)
	}

	// Removing it is protected the same way.
	res = a.Expect(a.Do("DELETE", policies+"freeze", bob, "", "Approval-Justification", "quarter closed"), http.StatusAccepted, "")
	del := res.Str("id")
	b.Expect(b.Do("POST", "/.approvals/api/v1/requests/"+del+"/approve", alice, ""), http.StatusOK, "")
	a.Expect(a.Do("POST", "/.approvals/api/v1/requests/"+del+"/complete", bob, ""), http.StatusOK, "")
	for i, g := range []*approvalstest.Harness{a, b} {
		testkit.WaitFor(t, func() bool {
			return g.Do("PUT", "/apps/"+string(rune('3'+i)), eve, "", "Approval-Justification", "j").Status == http.StatusAccepted
		})
	}
	res = a.Expect(a.Do("GET", policies+"freeze", eve, ""), http.StatusOK, "")
	if res.Body["in_force"] != false || len(res.Body["versions"].([]any)) != 2 {
		t.Fatalf("after removal: %s", res.Raw)
	}
	admin := a.Token("audrey", "auditors")
	audit := a.Expect(a.Do("GET", "/.approvals/api/v1/audit?action=policy_changed", admin, ""), http.StatusOK, "")
	if len(audit.Body["events"].([]any)) != 1 {
		t.Fatalf("policy change not audited: %s", audit.Raw)
	}
	_ = time.Second
}

func dumpLogs(t *testing.T, h *approvalstest.Harness) {
	for _, e := range h.Logs.All() {
		if e.Level >= 1 {
			t.Logf("%s %v", e.Message, e.ContextMap())
		}
	}
}
