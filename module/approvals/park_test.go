package approvals_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
)

func TestDryRun(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, dryRunPolicy), nil)
	alice, admin := h.Token("alice"), h.Token("audrey", "auditors")
	h.Expect(h.Do("POST", "/scripts", alice, `{"x":1}`), http.StatusCreated, "")
	if calls := h.Backend.Mutating(); len(calls) != 1 || calls[0].Body != `{"x":1}` {
		t.Fatalf("dry run did not pass the call: %+v", calls)
	}
	if h.Logs.FilterMessage("dry run: would require approval").Len() != 1 {
		t.Fatal("dry run not logged")
	}
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?action=dry_run", admin, ""), http.StatusOK, "")
	events := res.Body["events"].([]any)
	if len(events) != 1 || !strings.Contains(events[0].(map[string]any)["notes"].(string), "1 from script-approvers") {
		t.Fatalf("dry run not audited with the would-be approvers: %s", res.Raw)
	}
	mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	if len(mine.Body["requests"].([]any)) != 0 {
		t.Fatal("a dry run parked a request")
	}
}

func TestBreakGlass(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	h := approvalstest.New(t, testkit.WritePolicy(t, breakGlassPolicy), nil)
	oncall := h.TokenWith(map[string]any{"sub": "oncall", "groups": []string{"it-ops"}, "break_glass": true})
	admin := h.Token("audrey", "auditors")

	h.Expect(h.Do("DELETE", "/roles/1", oncall, ""), http.StatusPreconditionRequired, approvals.CodeJustificationRequired)
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("break-glass without a justification passed")
	}
	res := h.Expect(h.Do("DELETE", "/roles/1", oncall, "", "Approval-Justification", "INC-9 admin locked out"), http.StatusOK, "")
	id := res.Header.Get("Approval-Request-Id")
	if len(h.Backend.Mutating()) != 1 || id == "" {
		t.Fatalf("break-glass call did not pass at once (id %q)", id)
	}
	rec := h.Record(oncall, id)
	if rec.Str("status") != "bypassed" || approvalstest.HistoryActions(rec) != "oncall:bypassed gateway:passed" || rec.Str("justification") != "INC-9 admin locked out" {
		t.Fatalf("record %s", rec.Raw)
	}
	if rec.Body["result"].(map[string]any)["status"].(float64) != 200 {
		t.Fatalf("backend answer not recorded: %s", rec.Raw)
	}
	audit := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?request_id="+id, admin, ""), http.StatusOK, "")
	if n := len(audit.Body["events"].([]any)); n != 2 {
		t.Fatalf("break-glass audit events: %d", n)
	}
	if h.Logs.FilterMessage("BREAK-GLASS: call passed without approval").Len() != 1 {
		t.Fatal("break-glass not logged loudly")
	}
	// A bypass holds no resource: a normal request for it parks.
	h.Park(h.Token("alice"), "DELETE", "/roles/1", "")

	// No trail, no bypass: with the store down the call does not pass.
	h.Etcd.Close()
	h.Expect(h.Do("DELETE", "/roles/1", oncall, "", "Approval-Justification", "again"), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	if len(h.Backend.Mutating()) != 1 {
		t.Fatal("break-glass passed without a record")
	}
}

func TestJustificationLimit(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.MaxJustification = 10 })
	alice := h.Token("alice")
	res := h.Expect(h.Do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 11)), http.StatusBadRequest, approvals.CodeJustificationTooLong)
	if !strings.Contains(res.Raw, "at most 10") {
		t.Fatalf("message %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 10)), http.StatusAccepted, "")
}

func TestMaxPendingPerIdentity(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.MaxPendingPerIdentity = 3 })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- h.Do("DELETE", fmt.Sprintf("/apps/%d", i), alice, "", "Approval-Justification", "j").Status
		}()
	}
	wg.Wait()
	close(codes)
	count := map[int]int{}
	for c := range codes {
		count[c]++
	}
	if count[http.StatusAccepted] != 3 || count[http.StatusTooManyRequests] != 7 {
		t.Fatalf("answers %v: the cap is not exact under concurrency", count)
	}
	// Another identity is not affected; finishing one frees a place.
	h.Park(bob, "DELETE", "/apps/bob", "")
	h.Expect(h.Do("DELETE", "/apps/x", alice, "", "Approval-Justification", "j"), http.StatusTooManyRequests, approvals.CodeTooManyPending)
	mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	first := mine.Body["requests"].([]any)[0].(map[string]any)["id"].(string)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+first+"/cancel", alice, ""), http.StatusOK, "")
	h.Park(alice, "DELETE", "/apps/x", "")
}
