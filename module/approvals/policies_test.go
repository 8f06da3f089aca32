package approvals

import (
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/record"
)

const dryRunPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "scripts", "resource": input.request.path,
	"approvers": [{"group": "script-approvers", "required": 1}], "dry_run": true,
}
`

func TestDryRun(t *testing.T) {
	h := newHarness(t, writePolicy(t, dryRunPolicy), nil)
	alice, admin := h.token("alice"), h.token("audrey", "auditors")
	h.expect(h.do("POST", "/scripts", alice, `{"x":1}`), http.StatusCreated, "")
	if calls := h.backend.mutating(); len(calls) != 1 || calls[0].Body != `{"x":1}` {
		t.Fatalf("dry run did not pass the call: %+v", calls)
	}
	if h.logs.FilterMessage("dry run: would require approval").Len() != 1 {
		t.Fatal("dry run not logged")
	}
	res := h.expect(h.do("GET", "/.approvals/api/v1/audit?action=dry_run", admin, ""), http.StatusOK, "")
	events := res.body["events"].([]any)
	if len(events) != 1 || !strings.Contains(events[0].(map[string]any)["notes"].(string), "1 from script-approvers") {
		t.Fatalf("dry run not audited with the would-be approvers: %s", res.raw)
	}
	mine := h.expect(h.do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	if len(mine.body["requests"].([]any)) != 0 {
		t.Fatal("a dry run parked a request")
	}
}

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

func TestBreakGlass(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	h := newHarness(t, writePolicy(t, breakGlassPolicy), nil)
	oncall := h.tokenWith(map[string]any{"sub": "oncall", "groups": []string{"it-ops"}, "break_glass": true})
	admin := h.token("audrey", "auditors")

	h.expect(h.do("DELETE", "/roles/1", oncall, ""), http.StatusPreconditionRequired, CodeJustificationRequired)
	if len(h.backend.mutating()) != 0 {
		t.Fatal("break-glass without a justification passed")
	}
	res := h.expect(h.do("DELETE", "/roles/1", oncall, "", "Approval-Justification", "INC-9 admin locked out"), http.StatusOK, "")
	id := res.header.Get("Approval-Request-Id")
	if len(h.backend.mutating()) != 1 || id == "" {
		t.Fatalf("break-glass call did not pass at once (id %q)", id)
	}
	rec := h.record(oncall, id)
	if rec.str("status") != "bypassed" || historyActions(rec) != "oncall:bypassed gateway:passed" || rec.str("justification") != "INC-9 admin locked out" {
		t.Fatalf("record %s", rec.raw)
	}
	if rec.body["result"].(map[string]any)["status"].(float64) != 200 {
		t.Fatalf("backend answer not recorded: %s", rec.raw)
	}
	audit := h.expect(h.do("GET", "/.approvals/api/v1/audit?request_id="+id, admin, ""), http.StatusOK, "")
	if n := len(audit.body["events"].([]any)); n != 2 {
		t.Fatalf("break-glass audit events: %d", n)
	}
	if h.logs.FilterMessage("BREAK-GLASS: call passed without approval").Len() != 1 {
		t.Fatal("break-glass not logged loudly")
	}
	// A bypass holds no resource: a normal request for it parks.
	h.park(h.token("alice"), "DELETE", "/roles/1", "")

	// No trail, no bypass: with the store down the call does not pass.
	h.etcd.Close()
	h.expect(h.do("DELETE", "/roles/1", oncall, "", "Approval-Justification", "again"), http.StatusServiceUnavailable, CodeStoreUnavailable)
	if len(h.backend.mutating()) != 1 {
		t.Fatal("break-glass passed without a record")
	}
}

func TestHealthAndEvaluate(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	dir := writePolicy(t, splitPolicy)
	h := newHarness(t, dir, nil)
	admin, alice := h.token("audrey", "auditors"), h.token("alice")
	res := h.expect(h.do("GET", "/.approvals/api/v1/health", "", ""), http.StatusOK, "")
	if res.str("status") != "ok" || res.str("store") != "ok" {
		t.Fatalf("health %s", res.raw)
	}
	stop := h.svc.StartSweeper()
	waitFor(t, func() bool {
		res := h.do("GET", "/.approvals/healthz", "", "")
		return res.status == http.StatusOK && strings.Contains(res.raw, `"sweeper":true`)
	})
	stop()
	if res := h.do("GET", "/.approvals/healthz", "", ""); !strings.Contains(res.raw, `"sweeper":false`) {
		t.Fatalf("healthz after resigning: %s", res.raw)
	}
	// A broken policy file: the old policies stay, health says why.
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package approval\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := h.opts.Policies.Reload(context.Background()); err == nil {
		t.Fatal("a broken policy reloaded")
	}
	res = h.expect(h.do("GET", "/.approvals/api/v1/health", "", ""), http.StatusOK, "")
	if res.str("status") != "degraded" || !strings.Contains(res.raw, "p.rego:4") {
		t.Fatalf("health after a broken reload: %s", res.raw)
	}
	h.expect(h.do("POST", "/roles", alice, ""), http.StatusForbidden, CodeDenied) // the old policy still decides

	body := `{"input": {"request": {"method": "POST", "path": "/open"}, "identity": {"subject": "x", "groups": []}}}`
	res = h.expect(h.do("POST", "/.approvals/api/v1/policies/evaluate", admin, body), http.StatusOK, "")
	if res.body["decision"].(map[string]any)["action"] != "allow" {
		t.Fatalf("evaluate: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/policies/evaluate", alice, body), http.StatusForbidden, CodeForbidden)
	if len(h.backend.mutating()) != 0 {
		t.Fatal("evaluate sent something")
	}
	h.etcd.Close()
	res = h.expect(h.do("GET", "/.approvals/api/v1/health", "", ""), http.StatusServiceUnavailable, "")
	if res.str("store") != "unavailable" {
		t.Fatalf("health with the store down: %s", res.raw)
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
	a := newHarness(t, "../../policies", nil)
	b := newHarnessOn(t, a.cli, a.etcd, "../../policies", nil)
	alice := a.token("alice", "auditors")
	bob := a.token("bob", "auditors")
	eve := a.token("eve", "it-ops")
	const policies = "/.approvals/api/v1/policies/"

	put := func(tok, body string, headers ...string) result {
		return a.do("PUT", policies+"freeze", tok, body, headers...)
	}
	change, _ := json.Marshal(map[string]any{"rego": freezePolicy, "data": map[string]any{"why": "quarter close"}})
	a.expect(put(eve, string(change), "Approval-Justification", "x"), http.StatusForbidden, CodeForbidden)
	a.expect(put(alice, string(change)), http.StatusPreconditionRequired, CodeJustificationRequired)
	broken, _ := json.Marshal(map[string]any{"rego": "package approval.policies.freeze\n\ndecision := {"})
	res := a.expect(put(alice, string(broken), "Approval-Justification", "x"), http.StatusUnprocessableEntity, CodeInvalidPolicy)
	if !strings.Contains(res.raw, "runtime/freeze.rego") {
		t.Fatalf("validation error does not name the module: %s", res.raw)
	}
	wrongPkg, _ := json.Marshal(map[string]any{"rego": "package approval\n\nx := 1\n"})
	a.expect(put(alice, string(wrongPkg), "Approval-Justification", "x"), http.StatusUnprocessableEntity, CodeInvalidPolicy)

	res = a.expect(put(alice, string(change), "Approval-Justification", "freeze app changes for the quarter close"), http.StatusAccepted, "")
	id := res.str("id")
	if res.str("policy") != "gateway-policies" || res.str("resource") != "policies/freeze" {
		t.Fatalf("parked change: %s", res.raw)
	}
	// Not in force before approval.
	a.expect(a.do("POST", "/apps", eve, "", "Approval-Justification", "j"), http.StatusAccepted, "")
	a.expect(a.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", alice, ""), http.StatusForbidden, record.CodeSelfApproval)
	b.expect(b.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"agreed with finance"}`), http.StatusOK, "")
	res = a.expect(a.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	if !strings.Contains(res.raw, `"version":1`) {
		t.Fatalf("complete answered %s", res.raw)
	}

	// In force on both gateways.
	t.Cleanup(func() {
		if t.Failed() {
			dumpLogs(t, a)
			dumpLogs(t, b)
		}
	})
	for _, g := range []*harness{a, b} {
		waitFor(t, func() bool {
			return g.do("PUT", "/apps/1", eve, "", "Approval-Justification", "j").errCode() == CodeDenied
		})
	}
	res = b.expect(b.do("PUT", "/apps/2", eve, "", "Approval-Justification", "j"), http.StatusForbidden, CodeDenied)
	if res.body["error"].(map[string]any)["message"] != "quarter close" {
		t.Fatalf("deny reason from the runtime data: %s", res.raw)
	}
	if len(a.backend.mutating())+len(b.backend.mutating()) != 0 {
		t.Fatal("a policy change or a frozen call reached a backend")
	}
	res = b.expect(b.do("GET", policies+"freeze", eve, ""), http.StatusOK, "")
	v := res.body["versions"].([]any)[0].(map[string]any)
	if v["proposed_by"] != "alice" || v["approved_by"].([]any)[0] != "bob" || v["request_id"] != id {
		t.Fatalf("version does not keep who proposed and approved: %s", res.raw)
	}

	// Removing it is protected the same way.
	res = a.expect(a.do("DELETE", policies+"freeze", bob, "", "Approval-Justification", "quarter closed"), http.StatusAccepted, "")
	del := res.str("id")
	b.expect(b.do("POST", "/.approvals/api/v1/requests/"+del+"/approve", alice, ""), http.StatusOK, "")
	a.expect(a.do("POST", "/.approvals/api/v1/requests/"+del+"/complete", bob, ""), http.StatusOK, "")
	for i, g := range []*harness{a, b} {
		waitFor(t, func() bool {
			return g.do("PUT", "/apps/"+string(rune('3'+i)), eve, "", "Approval-Justification", "j").status == http.StatusAccepted
		})
	}
	res = a.expect(a.do("GET", policies+"freeze", eve, ""), http.StatusOK, "")
	if res.body["in_force"] != false || len(res.body["versions"].([]any)) != 2 {
		t.Fatalf("after removal: %s", res.raw)
	}
	admin := a.token("audrey", "auditors")
	audit := a.expect(a.do("GET", "/.approvals/api/v1/audit?action=policy_changed", admin, ""), http.StatusOK, "")
	if len(audit.body["events"].([]any)) != 1 {
		t.Fatalf("policy change not audited: %s", audit.raw)
	}
	_ = time.Second
}

func dumpLogs(t *testing.T, h *harness) {
	for _, e := range h.logs.All() {
		if e.Level >= 1 {
			t.Logf("%s %v", e.Message, e.ContextMap())
		}
	}
}
