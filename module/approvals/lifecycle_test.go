package approvals

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/internal/etcdtest"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func (h *harness) record(tok, id string) result {
	h.t.Helper()
	return h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, tok, ""), http.StatusOK, "")
}

func (h *harness) approve(tok, id string) result {
	h.t.Helper()
	return h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", tok, ""), http.StatusOK, "")
}

func historyActions(res result) string {
	var out []string
	for _, e := range res.body["history"].([]any) {
		m := e.(map[string]any)
		out = append(out, m["actor"].(string)+":"+m["action"].(string))
	}
	return strings.Join(out, " ")
}

func TestJustificationLimit(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.MaxJustification = 10 })
	alice := h.token("alice")
	res := h.expect(h.do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 11)), http.StatusBadRequest, CodeJustificationTooLong)
	if !strings.Contains(res.raw, "at most 10") {
		t.Fatalf("message %s", res.raw)
	}
	h.expect(h.do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 10)), http.StatusAccepted, "")
}

const expiringPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "short", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}], "expires_in": "10m",
} if {
	input.request.path == "/short"
} else := {
	"action": "require_approval", "policy": "default", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}],
}
`

func TestTwoExpiryWindows(t *testing.T) {
	h := newHarness(t, writePolicy(t, expiringPolicy), func(o *Options) {
		o.ApprovalExpiry = time.Hour
		o.CompletionExpiry = 2 * time.Hour
	})
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	start := h.clock.Now()

	short := h.park(alice, "POST", "/short", "")
	long := h.park(alice, "POST", "/long", "")
	if got := h.record(alice, short).str("expires_at"); got != start.Add(10*time.Minute).Format(time.RFC3339) {
		t.Fatalf("decision expires_in not applied: %s", got)
	}
	if got := h.record(alice, long).str("expires_at"); got != start.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("approval_expiry not applied: %s", got)
	}

	// Approved 50 minutes in: the completion window starts then.
	h.clock.Add(50 * time.Minute)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+short+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	if h.record(alice, short).str("status") != "expired" {
		t.Fatal("the short request did not expire")
	}
	res := h.approve(bob, long)
	if res.str("expires_at") != h.clock.Now().Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("completion window not started at approval: %s", res.str("expires_at"))
	}
	// Past the approval window, inside the completion window: completes.
	h.clock.Add(time.Hour)
	id2 := h.park(alice, "POST", "/other", "")
	h.approve(bob, id2)
	h.clock.Add(2 * time.Hour)
	res = h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id2+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.body["error"].(map[string]any)["status"] != "expired" {
		t.Fatalf("complete after the completion window: %s", res.raw)
	}
	if len(h.backend.mutating()) != 0 {
		t.Fatal("an expired request was replayed")
	}
	if got := historyActions(h.record(alice, id2)); got != "alice:parked bob:approved gateway:expired" {
		t.Fatalf("history %s", got)
	}
}

func TestSweepersRacing(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.ApprovalExpiry = time.Hour })
	alice := h.token("alice")
	const n = 30
	var ids []string
	for i := range n {
		ids = append(ids, h.park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	fresh := h.park(alice, "DELETE", "/apps/fresh", "")
	h.clock.Add(time.Hour)
	h.clock.Add(-time.Second)
	late := h.park(alice, "DELETE", "/apps/late", "") // expires one second after the others' deadline
	h.clock.Add(time.Second)
	_ = fresh

	// Two gateways sweep at the same time: each request expires once.
	other := h.sibling(zap.NewNop())
	var wg sync.WaitGroup
	stats := make([]SweepStats, 2)
	for i, svc := range []*Service{h.svc, other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := svc.Sweep(context.Background())
			if err != nil {
				t.Error(err)
			}
			stats[i] = st
		}()
	}
	wg.Wait()
	if got := stats[0].Expired + stats[1].Expired; got != n+1 {
		t.Fatalf("expired %d (%+v), want %d", got, stats, n+1)
	}
	for _, id := range ids {
		res := h.record(alice, id)
		if res.str("status") != "expired" || strings.Count(historyActions(res), "expired") != 1 {
			t.Fatalf("%s: %s %s", id, res.str("status"), historyActions(res))
		}
	}
	if h.record(alice, late).str("status") != "needs_approval" {
		t.Fatal("a request inside its window was expired")
	}
	// The resources are free again.
	h.park(alice, "DELETE", "/apps/0", "")
}

func TestSweeperElection(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.SweepInterval = 20 * time.Millisecond })
	core2, logs2 := observer.New(zap.InfoLevel)
	other := h.sibling(zap.New(core2))
	stop1 := h.svc.StartSweeper()
	waitFor(t, func() bool { return h.logs.FilterMessage("elected as the sweeper").Len() == 1 })
	stop2 := other.StartSweeper()
	defer stop2()
	time.Sleep(300 * time.Millisecond)
	if logs2.FilterMessage("elected as the sweeper").Len() != 0 {
		t.Fatal("two sweepers elected at once")
	}
	stop1() // resigns: the other gateway takes over
	waitFor(t, func() bool { return logs2.FilterMessage("elected as the sweeper").Len() == 1 })
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestRetention(t *testing.T) {
	h := newHarness(t, "", func(o *Options) {
		o.Retention = 24 * time.Hour
		o.AuditRetention = 72 * time.Hour
	})
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	admin := h.token("audrey", "auditors")
	done := h.park(alice, "DELETE", "/apps/1", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+done+"/reject", bob, `{"notes":"no"}`), http.StatusOK, "")
	open := h.park(alice, "DELETE", "/apps/2", "")

	h.clock.Add(23 * time.Hour)
	if st, _ := h.svc.Sweep(context.Background()); st.Removed != 0 {
		t.Fatal("removed inside the retention")
	}
	h.clock.Add(2 * time.Hour)
	st, err := h.svc.Sweep(context.Background())
	if err != nil || st.Removed != 1 || st.Expired != 0 {
		t.Fatalf("sweep %+v %v", st, err)
	}
	h.expect(h.do("GET", "/.approvals/api/v1/requests/"+done, alice, ""), http.StatusNotFound, CodeNotFound)
	if h.record(alice, open).str("status") != "needs_approval" {
		t.Fatal("a pending request was removed")
	}
	mine := h.expect(h.do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	if n := len(mine.body["requests"].([]any)); n != 1 {
		t.Fatalf("index still lists the removed request: %d", n)
	}
	// The audit log outlives the request...
	audit := h.expect(h.do("GET", "/.approvals/api/v1/audit?request_id="+done, admin, ""), http.StatusOK, "")
	if n := len(audit.body["events"].([]any)); n != 2 {
		t.Fatalf("audit events of the removed request: %d", n)
	}
	// ...until its own retention.
	h.clock.Add(48 * time.Hour)
	if st, _ := h.svc.Sweep(context.Background()); st.AuditPruned == 0 {
		t.Fatal("audit log not pruned")
	}
	audit = h.expect(h.do("GET", "/.approvals/api/v1/audit?request_id="+done, admin, ""), http.StatusOK, "")
	if n := len(audit.body["events"].([]any)); n != 0 {
		t.Fatalf("audit events past retention: %d", n)
	}
}

const autoPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "auto", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 2}], "complete": "auto",
}
`

func TestAutoComplete(t *testing.T) {
	h := newHarness(t, writePolicy(t, autoPolicy), nil)
	alice, bob, carol := h.token("alice"), h.token("bob", "approvers"), h.token("carol", "approvers")
	id := h.park(alice, "POST", "/scripts", `{"run":"all"}`)
	res := h.approve(bob, id)
	if res.str("status") != "needs_approval" || len(h.backend.mutating()) != 0 {
		t.Fatal("replayed before the quorum")
	}
	res = h.approve(carol, id)
	if res.str("status") != "completed" {
		t.Fatalf("auto-complete: %s", res.raw)
	}
	result := res.body["result"].(map[string]any)
	if result["status"].(float64) != 201 || result["body_excerpt"] != `{"done":"POST /scripts"}` {
		t.Fatalf("the approval's answer lacks the backend's result: %v", result)
	}
	calls := h.backend.mutating()
	if len(calls) != 1 || calls[0].Body != `{"run":"all"}` {
		t.Fatalf("backend calls %+v", calls)
	}
	if a := calls[0].Header.Get("Authorization"); a != "" {
		t.Fatalf("an approver's or the requester's token reached the backend: %q", a)
	}
	if got := historyActions(h.record(alice, id)); got != "alice:parked bob:approved carol:approved gateway:completing gateway:completed" {
		t.Fatalf("history %s", got)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestListFilters(t *testing.T) {
	h := newHarness(t, writePolicy(t, splitPolicy), nil)
	alice, carol, bob := h.token("alice"), h.token("carol"), h.token("bob", "approvers")
	admin := h.token("audrey", "auditors")
	t0 := h.clock.Now()
	a1 := h.park(alice, "POST", "/x/1", "")
	h.clock.Add(time.Hour)
	c1 := h.park(carol, "POST", "/x/2", "")
	h.clock.Add(time.Hour)
	a2 := h.park(alice, "POST", "/x/3", "")
	ids := func(tok, q string) string {
		res := h.expect(h.do("GET", "/.approvals/api/v1/requests"+q, tok, ""), http.StatusOK, "")
		var out []string
		for _, r := range res.body["requests"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return strings.Join(out, ",")
	}
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	for q, want := range map[string]string{
		"?view=received&requester=carol":                 c1,
		"?view=all&policy=apps":                          a2 + "," + c1 + "," + a1,
		"?view=all&policy=rbac":                          "",
		"?view=received&resource=/x/3":                   a2,
		"?view=all&created_after=" + ts(30*time.Minute):  a2 + "," + c1,
		"?view=all&created_before=" + ts(90*time.Minute): c1 + "," + a1,
		"?view=all&created_after=" + ts(30*time.Minute) + "&created_before=" + ts(90*time.Minute): c1,
		"?view=mine&status=needs_approval&created_before=" + ts(time.Minute):                      "",
	} {
		tok := admin
		if strings.Contains(q, "received") {
			tok = bob
		}
		if strings.Contains(q, "mine") {
			tok = carol
		}
		if got := ids(tok, q); got != want {
			t.Errorf("%s: got %s, want %s", q, got, want)
		}
	}
	h.expect(h.do("GET", "/.approvals/api/v1/requests?created_after=yesterday", alice, ""), http.StatusBadRequest, CodeBadRequest)
}

func TestPaginationUnderConcurrentInserts(t *testing.T) {
	h := newHarness(t, "", nil)
	alice := h.token("alice")
	var before []string
	for i := range 12 {
		before = append(before, h.park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.do("DELETE", fmt.Sprintf("/apps/new-%d", i), alice, "", "Approval-Justification", "j")
		}
	}()
	var got []string
	cursor := ""
	for {
		res := h.expect(h.do("GET", "/.approvals/api/v1/requests?limit=5&cursor="+cursor+"&created_before="+h.clock.Now().Add(time.Second).Format(time.RFC3339), alice, ""), http.StatusOK, "")
		for _, r := range res.body["requests"].([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		if cursor = res.str("next_cursor"); cursor == "" {
			break
		}
	}
	close(stop)
	wg.Wait()
	// Newer inserts sort above the cursor: every older request is listed
	// exactly once, in order.
	seen := map[string]bool{}
	var old []string
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s listed twice", id)
		}
		seen[id] = true
		for _, b := range before {
			if b == id {
				old = append(old, id)
			}
		}
	}
	for i := range before {
		if old[i] != before[len(before)-1-i] {
			t.Fatalf("older requests out of order or missing: %v", old)
		}
	}
}

func TestAuditLog(t *testing.T) {
	h := newHarness(t, "", nil)
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	admin := h.token("audrey", "auditors")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.approve(bob, id)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.expect(h.do("GET", "/.approvals/api/v1/audit", bob, ""), http.StatusForbidden, CodeForbidden)

	res := h.expect(h.do("GET", "/.approvals/api/v1/audit?request_id="+id, admin, ""), http.StatusOK, "")
	var got []string
	for _, e := range res.body["events"].([]any) {
		m := e.(map[string]any)
		got = append(got, fmt.Sprintf("%s:%s:%v->%s@%v", m["actor"], m["action"], m["from"], m["to"], m["client_ip"]))
	}
	want := "gateway:completed:completing->completed@127.0.0.1 alice:completing:approved->completing@127.0.0.1 " +
		"bob:approved:needs_approval->approved@127.0.0.1 alice:parked:<nil>->needs_approval@127.0.0.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit log\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	res = h.expect(h.do("GET", "/.approvals/api/v1/audit?actor=bob&limit=1", admin, ""), http.StatusOK, "")
	if n := len(res.body["events"].([]any)); n != 1 || res.str("next_cursor") != "" {
		t.Fatalf("filtered page: %s", res.raw)
	}
	page := h.expect(h.do("GET", "/.approvals/api/v1/audit?limit=3", admin, ""), http.StatusOK, "")
	rest := h.expect(h.do("GET", "/.approvals/api/v1/audit?limit=3&cursor="+page.str("next_cursor"), admin, ""), http.StatusOK, "")
	if len(page.body["events"].([]any)) != 3 || len(rest.body["events"].([]any)) != 1 {
		t.Fatalf("audit pages: %s / %s", page.raw, rest.raw)
	}
}

func TestMaxPendingPerIdentity(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.MaxPendingPerIdentity = 3 })
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	var wg sync.WaitGroup
	codes := make(chan int, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			codes <- h.do("DELETE", fmt.Sprintf("/apps/%d", i), alice, "", "Approval-Justification", "j").status
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
	h.park(bob, "DELETE", "/apps/bob", "")
	h.expect(h.do("DELETE", "/apps/x", alice, "", "Approval-Justification", "j"), http.StatusTooManyRequests, CodeTooManyPending)
	mine := h.expect(h.do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	first := mine.body["requests"].([]any)[0].(map[string]any)["id"].(string)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+first+"/cancel", alice, ""), http.StatusOK, "")
	h.park(alice, "DELETE", "/apps/x", "")
}

func TestStoreRestartRecovers(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	dir := t.TempDir()
	srv, err := etcdembed.Start(etcdembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdtest.Dial(t, srv.Endpoint)
	h := newHarnessOn(t, cli, srv, "", nil)
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	id := h.park(alice, "DELETE", "/apps/1", "")

	srv.Close()
	h.expect(h.do("DELETE", "/apps/2", alice, "", "Approval-Justification", "j"), http.StatusServiceUnavailable, CodeStoreUnavailable)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusServiceUnavailable, CodeStoreUnavailable)
	h.expect(h.do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.backend.mutating()) != 0 {
		t.Fatal("a protected call passed while the store was down")
	}

	// The same data comes back on a fresh port (the old one may have been
	// taken meanwhile): the client is pointed at it, as an operator's DNS
	// or endpoint list would be.
	srv2, err := etcdembed.Start(etcdembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	cli.SetEndpoints(srv2.Endpoint)
	// The same gateway, without a restart, works again.
	waitFor(t, func() bool {
		return h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, "").status == http.StatusOK
	})
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.park(alice, "DELETE", "/apps/2", "")
}

func TestInterruptedReplayFailsAfterClaimTimeout(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.ClaimTimeout = 5 * time.Minute })
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.approve(bob, id)

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
		_ = h.svc.ServeHTTP(httptest.NewRecorder(), req, crashed)
	}()
	<-started

	if h.record(alice, id).str("status") != "completing" {
		t.Fatal("the claim was not left in completing")
	}
	h.clock.Add(4 * time.Minute)
	if h.record(alice, id).str("status") != "completing" {
		t.Fatal("failed before the claim timeout")
	}
	// Never replayed automatically: after the timeout it is failed, with the
	// reason visible to the requester.
	h.clock.Add(time.Minute)
	res := h.record(alice, id)
	if res.str("status") != "failed" || !strings.Contains(res.raw, "outcome unknown") {
		t.Fatalf("after the claim timeout: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if len(h.backend.mutating()) != 0 {
		t.Fatal("replayed again")
	}
	// The requester may resubmit.
	h.park(alice, "DELETE", "/apps/1", "")
}

func TestCanceledReplayIsOutcomeUnknown(t *testing.T) {
	h := newHarness(t, "", nil)
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.approve(bob, id)

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
		_ = h.svc.ServeHTTP(httptest.NewRecorder(), req, proxyTo(hung.URL))
	}()
	<-arrived
	cancel()
	<-done
	res := h.record(alice, id)
	if res.str("status") != "failed" || !strings.Contains(res.raw, "outcome unknown") {
		t.Fatalf("after the cut: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestSweeperFailsStaleClaims(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.ClaimTimeout = time.Minute })
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.approve(bob, id)
	if _, err := h.svc.o.Store.Mutate(context.Background(), id, "", func(r *record.Record) error {
		return r.Claim(record.Principal{Subject: "alice"}, h.clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	h.clock.Add(2 * time.Minute)
	st, err := h.svc.Sweep(context.Background())
	if err != nil || st.Failed != 1 {
		t.Fatalf("sweep %+v %v", st, err)
	}
	if h.record(alice, id).str("status") != "failed" {
		t.Fatal("stale claim not failed")
	}
}
