package approvals_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func TestJustificationLimit(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.MaxJustification = 10 })
	alice := h.Token("alice")
	res := h.Expect(h.Do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 11)), http.StatusBadRequest, approvals.CodeJustificationTooLong)
	if !strings.Contains(res.Raw, "at most 10") {
		t.Fatalf("message %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/apps", alice, "", "Approval-Justification", strings.Repeat("é", 10)), http.StatusAccepted, "")
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
	h := approvalstest.New(t, testkit.WritePolicy(t, expiringPolicy), func(o *approvalstest.Options) {
		o.ApprovalExpiry = time.Hour
		o.CompletionExpiry = 2 * time.Hour
	})
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	start := h.Clock.Now()

	short := h.Park(alice, "POST", "/short", "")
	long := h.Park(alice, "POST", "/long", "")
	if got := h.Record(alice, short).Str("expires_at"); got != start.Add(10*time.Minute).Format(time.RFC3339) {
		t.Fatalf("decision expires_in not applied: %s", got)
	}
	if got := h.Record(alice, long).Str("expires_at"); got != start.Add(time.Hour).Format(time.RFC3339) {
		t.Fatalf("approval_expiry not applied: %s", got)
	}

	// Approved 50 minutes in: the completion window starts then.
	h.Clock.Add(50 * time.Minute)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+short+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	if h.Record(alice, short).Str("status") != "expired" {
		t.Fatal("the short request did not expire")
	}
	res := h.Approve(bob, long)
	if res.Str("expires_at") != h.Clock.Now().Add(2*time.Hour).Format(time.RFC3339) {
		t.Fatalf("completion window not started at approval: %s", res.Str("expires_at"))
	}
	// Past the approval window, inside the completion window: completes.
	h.Clock.Add(time.Hour)
	id2 := h.Park(alice, "POST", "/other", "")
	h.Approve(bob, id2)
	h.Clock.Add(2 * time.Hour)
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id2+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.Body["error"].(map[string]any)["status"] != "expired" {
		t.Fatalf("complete after the completion window: %s", res.Raw)
	}
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("an expired request was replayed")
	}
	if got := approvalstest.HistoryActions(h.Record(alice, id2)); got != "alice:parked bob:approved gateway:expired" {
		t.Fatalf("history %s", got)
	}
}

func TestSweepersRacing(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ApprovalExpiry = time.Hour })
	alice := h.Token("alice")
	const n = 30
	var ids []string
	for i := range n {
		ids = append(ids, h.Park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	fresh := h.Park(alice, "DELETE", "/apps/fresh", "")
	h.Clock.Add(time.Hour)
	h.Clock.Add(-time.Second)
	late := h.Park(alice, "DELETE", "/apps/late", "") // expires one second after the others' deadline
	h.Clock.Add(time.Second)
	_ = fresh

	// Two gateways sweep at the same time: each request expires once.
	other := h.Sibling(zap.NewNop())
	var wg sync.WaitGroup
	stats := make([]approvals.SweepStats, 2)
	for i, svc := range []*approvals.Service{h.Svc, other} {
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
		res := h.Record(alice, id)
		if res.Str("status") != "expired" || strings.Count(approvalstest.HistoryActions(res), "expired") != 1 {
			t.Fatalf("%s: %s %s", id, res.Str("status"), approvalstest.HistoryActions(res))
		}
	}
	if h.Record(alice, late).Str("status") != "needs_approval" {
		t.Fatal("a request inside its window was expired")
	}
	// The resources are free again.
	h.Park(alice, "DELETE", "/apps/0", "")
}

func TestSweeperElection(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.SweepInterval = 20 * time.Millisecond })
	core2, logs2 := observer.New(zap.InfoLevel)
	other := h.Sibling(zap.New(core2))
	stop1 := testkit.Run(t, h.Svc.RunSweeper)
	testkit.WaitFor(t, func() bool { return h.Logs.FilterMessage("elected as the sweeper").Len() == 1 })
	stop2 := testkit.Run(t, other.RunSweeper)
	defer stop2()
	time.Sleep(300 * time.Millisecond)
	if logs2.FilterMessage("elected as the sweeper").Len() != 0 {
		t.Fatal("two sweepers elected at once")
	}
	stop1() // resigns: the other gateway takes over
	testkit.WaitFor(t, func() bool { return logs2.FilterMessage("elected as the sweeper").Len() == 1 })
}

func TestRetention(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) {
		o.Retention = 24 * time.Hour
		o.AuditRetention = 72 * time.Hour
	})
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	admin := h.Token("audrey", "auditors")
	done := h.Park(alice, "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+done+"/reject", bob, `{"notes":"no"}`), http.StatusOK, "")
	open := h.Park(alice, "DELETE", "/apps/2", "")

	h.Clock.Add(23 * time.Hour)
	if st, _ := h.Svc.Sweep(context.Background()); st.Removed != 0 {
		t.Fatal("removed inside the retention")
	}
	h.Clock.Add(2 * time.Hour)
	st, err := h.Svc.Sweep(context.Background())
	if err != nil || st.Removed != 1 || st.Expired != 0 {
		t.Fatalf("sweep %+v %v", st, err)
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+done, alice, ""), http.StatusNotFound, approvals.CodeNotFound)
	if h.Record(alice, open).Str("status") != "needs_approval" {
		t.Fatal("a pending request was removed")
	}
	mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	if n := len(mine.Body["requests"].([]any)); n != 1 {
		t.Fatalf("index still lists the removed request: %d", n)
	}
	// The audit log outlives the request...
	audit := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?request_id="+done, admin, ""), http.StatusOK, "")
	if n := len(audit.Body["events"].([]any)); n != 2 {
		t.Fatalf("audit events of the removed request: %d", n)
	}
	// ...until its own retention.
	h.Clock.Add(48 * time.Hour)
	if st, _ := h.Svc.Sweep(context.Background()); st.AuditPruned == 0 {
		t.Fatal("audit log not pruned")
	}
	audit = h.Expect(h.Do("GET", "/.approvals/api/v1/audit?request_id="+done, admin, ""), http.StatusOK, "")
	if n := len(audit.Body["events"].([]any)); n != 0 {
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
	if got := approvalstest.HistoryActions(h.Record(alice, id)); got != "alice:parked bob:approved carol:approved gateway:completing gateway:completed" {
		t.Fatalf("history %s", got)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestListFilters(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), nil)
	alice, carol, bob := h.Token("alice"), h.Token("carol"), h.Token("bob", "approvers")
	admin := h.Token("audrey", "auditors")
	t0 := h.Clock.Now()
	a1 := h.Park(alice, "POST", "/x/1", "")
	h.Clock.Add(time.Hour)
	c1 := h.Park(carol, "POST", "/x/2", "")
	h.Clock.Add(time.Hour)
	a2 := h.Park(alice, "POST", "/x/3", "")
	ids := func(tok, q string) string {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests"+q, tok, ""), http.StatusOK, "")
		var out []string
		for _, r := range res.Body["requests"].([]any) {
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
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests?created_after=yesterday", alice, ""), http.StatusBadRequest, approvals.CodeBadRequest)
}

func TestPaginationUnderConcurrentInserts(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	var before []string
	for i := range 12 {
		before = append(before, h.Park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
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
			h.Do("DELETE", fmt.Sprintf("/apps/new-%d", i), alice, "", "Approval-Justification", "j")
		}
	}()
	var got []string
	cursor := ""
	for {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?limit=5&cursor="+cursor+"&created_before="+h.Clock.Now().Add(time.Second).Format(time.RFC3339), alice, ""), http.StatusOK, "")
		for _, r := range res.Body["requests"].([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		if cursor = res.Str("next_cursor"); cursor == "" {
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
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	admin := h.Token("audrey", "auditors")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.Expect(h.Do("GET", "/.approvals/api/v1/audit", bob, ""), http.StatusForbidden, approvals.CodeForbidden)

	res := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?request_id="+id, admin, ""), http.StatusOK, "")
	var got []string
	for _, e := range res.Body["events"].([]any) {
		m := e.(map[string]any)
		got = append(got, fmt.Sprintf("%s:%s:%v->%s@%v", m["actor"], m["action"], m["from"], m["to"], m["client_ip"]))
	}
	want := "gateway:completed:completing->completed@127.0.0.1 alice:completing:approved->completing@127.0.0.1 " +
		"bob:approved:needs_approval->approved@127.0.0.1 alice:parked:<nil>->needs_approval@127.0.0.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit log\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/audit?actor=bob&limit=1", admin, ""), http.StatusOK, "")
	if n := len(res.Body["events"].([]any)); n != 1 || res.Str("next_cursor") != "" {
		t.Fatalf("filtered page: %s", res.Raw)
	}
	page := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?limit=3", admin, ""), http.StatusOK, "")
	rest := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?limit=3&cursor="+page.Str("next_cursor"), admin, ""), http.StatusOK, "")
	if len(page.Body["events"].([]any)) != 3 || len(rest.Body["events"].([]any)) != 1 {
		t.Fatalf("audit pages: %s / %s", page.Raw, rest.Raw)
	}
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

func TestStoreRestartRecovers(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	dir := t.TempDir()
	srv, err := etcdembed.Start(etcdembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdkit.Dial(t, srv.Endpoint)
	h := approvalstest.NewOn(t, cli, srv, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")

	srv.Close()
	h.Expect(h.Do("DELETE", "/apps/2", alice, "", "Approval-Justification", "j"), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	h.Expect(h.Do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.Backend.Mutating()) != 0 {
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
	testkit.WaitFor(t, func() bool {
		return h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, "").Status == http.StatusOK
	})
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.Park(alice, "DELETE", "/apps/2", "")
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

func TestSweeperFailsStaleClaims(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ClaimTimeout = time.Minute })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)
	if _, err := h.Opts.Store.Mutate(context.Background(), id, "", func(r *record.Record) error {
		return r.Claim(record.Principal{Subject: "alice"}, h.Clock.Now())
	}); err != nil {
		t.Fatal(err)
	}
	h.Clock.Add(2 * time.Minute)
	st, err := h.Svc.Sweep(context.Background())
	if err != nil || st.Failed != 1 {
		t.Fatalf("sweep %+v %v", st, err)
	}
	if h.Record(alice, id).Str("status") != "failed" {
		t.Fatal("stale claim not failed")
	}
}
