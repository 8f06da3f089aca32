package approvals_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

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
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+done+"/reject", bob, `{"notes":"no"}`, "Content-Type", "application/json"), http.StatusOK, "")
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

func TestExpiryWithoutSweeper(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ApprovalExpiry = time.Hour })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Clock.Add(time.Hour)
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.Body["error"].(map[string]any)["status"] != "expired" {
		t.Fatalf("approve after expiry: %s", res.Raw)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.Str("status") != "expired" {
		t.Fatalf("status %s", res.Str("status"))
	}
	// The resource is free again.
	h.Park(alice, "DELETE", "/apps/1", "")
}

// A sweep reads only what is due: with nothing due, its etcd reads are the
// same for 3 pending requests as for 60 (it finds what is due in the
// gateway's view of the open requests); once they are due, it expires
// every one.
func TestSweepReadsOnlyWhatIsDue(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	park := func(from, to int) {
		for i := from; i < to; i++ {
			h.Park(h.Token(fmt.Sprint("requester-", i%6)), "DELETE", fmt.Sprint("/apps/", i), "")
		}
	}
	sweepReads := func() float64 {
		before := etcdkit.Metric(t, "etcd_mvcc_range_total")
		if st, err := h.Svc.Sweep(context.Background()); err != nil || st != (approvals.SweepStats{}) {
			t.Fatalf("sweep %+v %v", st, err)
		}
		return etcdkit.Metric(t, "etcd_mvcc_range_total") - before
	}
	park(0, 3)
	few := sweepReads()
	park(3, 60)
	if many := sweepReads(); many != few {
		t.Fatalf("a sweep with nothing due read %v times with 60 pending, %v with 3: it grows with the store", many, few)
	}
	h.Clock.Add(31 * 24 * time.Hour)
	st, err := h.Svc.Sweep(context.Background())
	if err != nil || st.Expired != 60 {
		t.Fatalf("sweep once due: %+v %v", st, err)
	}
}
