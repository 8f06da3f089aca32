package approvals_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
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
		replay.Header.Get("Idempotency-Key") != id || replay.Header.Get("Approval_approved_by") != "" ||
		len(replay.Header.Values("Approval-Attestation")) != 1 || strings.HasPrefix(replay.Header.Get("Approval-Attestation"), "eyJhbGciOiJub25lIn0") {
		t.Fatalf("the replay carried %v", replay.Header)
	}
}

func TestConcurrentCompletesReplayOnce(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "approvers"), ""), http.StatusOK, "")

	const n = 50
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", h.GW.URL+"/.approvals/api/v1/requests/"+id+"/complete", nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("answers %v, want one 200 and %d 409", count, n-1)
	}
	if calls := h.Backend.Mutating(); len(calls) != 1 {
		t.Fatalf("backend saw %d replays", len(calls))
	}
}

func TestUnreachableBackendFails(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "approvers"), ""), http.StatusOK, "")
	h.Backend.Close()
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusBadGateway, approvals.CodeReplayFailed)
	if !strings.Contains(res.Raw, `"status":"failed"`) {
		t.Fatalf("502 does not carry the failed record: %s", res.Raw)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "connect") {
		t.Fatalf("record %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

const autoPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "auto", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 2}], "complete": "auto",
}
`

func TestAutoComplete(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, autoPolicy), nil)
	alice, bob, carol := h.Token("alice"), h.Token("bob", "approvers"), h.Token("carol", "approvers")
	id := h.Park(alice, "POST", "/scripts", `{"run":"all"}`)
	res := h.Approve(bob, id)
	if res.Str("status") != "needs_approval" || len(h.Backend.Mutating()) != 0 {
		t.Fatal("replayed before the quorum")
	}
	res = h.Approve(carol, id)
	if res.Str("status") != "completed" {
		t.Fatalf("auto-complete: %s", res.Raw)
	}
	result := res.Body["result"].(map[string]any)
	if result["status"].(float64) != 201 || result["body_excerpt"] != `{"done":"POST /scripts"}` {
		t.Fatalf("the approval's answer lacks the backend's result: %v", result)
	}
	calls := h.Backend.Mutating()
	if len(calls) != 1 || calls[0].Body != `{"run":"all"}` {
		t.Fatalf("backend calls %+v", calls)
	}
	if a := calls[0].Header.Get("Authorization"); a != "" {
		t.Fatalf("an approver's or the requester's token reached the backend: %q", a)
	}
	// The auto-complete replay is attested like any other.
	c, _ := verifyAttestation(t, calls[0].Header.Get("Approval-Attestation"), []byte(h.Do("GET", "/.approvals/.well-known/jwks.json", "", "").Raw))
	if c.Jti != id || c.Sub != "alice" || strings.Join(c.Approvers, ",") != "bob,carol" || c.Req.Target != "/scripts" {
		t.Fatalf("the auto-complete's attestation: %+v", c)
	}
	if got := approvalstest.HistoryActions(h.Record(alice, id)); got != "alice:parked bob:approved carol:approved gateway:completing gateway:completed" {
		t.Fatalf("history %s", got)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestInterruptedReplayFailsAfterClaimTimeout(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ClaimTimeout = 5 * time.Minute })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)

	// The gateway dies between the claim and the backend's answer: the
	// handler is killed while the call is in flight, so nothing after the
	// replay runs.
	started := make(chan struct{})
	crashed := func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		panic(http.ErrAbortHandler)
	}
	req := httptest.NewRequest("POST", "/.approvals/api/v1/requests/"+id+"/complete", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	func() {
		defer func() { _ = recover() }()
		_ = h.Svc.ServeHTTP(httptest.NewRecorder(), req, crashed)
	}()
	<-started

	if h.Record(alice, id).Str("status") != "completing" {
		t.Fatal("the claim was not left in completing")
	}
	h.Clock.Add(4 * time.Minute)
	if h.Record(alice, id).Str("status") != "completing" {
		t.Fatal("failed before the claim timeout")
	}
	// Never replayed automatically: after the timeout it is failed, with the
	// reason visible to the requester.
	h.Clock.Add(time.Minute)
	res := h.Record(alice, id)
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "outcome unknown") {
		t.Fatalf("after the claim timeout: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("replayed again")
	}
	// The requester may resubmit.
	h.Park(alice, "DELETE", "/apps/1", "")
}

func TestCanceledReplayIsOutcomeUnknown(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)

	// A backend that hangs, and a caller that gives up.
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer hung.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("POST", "/.approvals/api/v1/requests/"+id+"/complete", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+alice)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Svc.ServeHTTP(httptest.NewRecorder(), req, approvalstest.ProxyTo(hung.URL))
	}()
	<-arrived
	cancel()
	<-done
	res := h.Record(alice, id)
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "outcome unknown") {
		t.Fatalf("after the cut: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}
