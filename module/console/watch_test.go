package console_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/console"
)

// The console's pages cost the store nothing that grows with it: the
// "waiting for you" count comes from the gateway's view of the open
// requests (a page's etcd reads do not grow from 3 pending requests to
// 40), and every live page shares the gateway's one watch (20 open
// live streams add no etcd watch).
func TestConsolePagesShareTheGatewaysWatch(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	withConsole(t, h.Svc, h.Opts, console.Options{RequestIdentity: true})
	bob := h.Token("bob", "approvers", "app-approvers")
	var first string
	park := func(from, to int) {
		for i := from; i < to; i++ {
			id := h.Park(h.Token(fmt.Sprint("requester-", i%8)), "DELETE", fmt.Sprint("/apps/", i), "")
			if first == "" {
				first = id
			}
		}
	}
	// One request's page: its own reads are the same every time; the
	// header's count is the part that could grow.
	page := func(want int) float64 {
		t.Helper()
		var reads float64
		testkit.WaitFor(t, func() bool {
			before := etcdkit.Metric(t, "etcd_mvcc_range_total")
			a := h.Do("GET", "/.approvals/requests/"+first, bob, "")
			reads = etcdkit.Metric(t, "etcd_mvcc_range_total") - before
			return a.Status == http.StatusOK && strings.Contains(a.Raw, fmt.Sprintf(`title="waiting for your approval">%d<`, want))
		})
		return reads
	}
	park(0, 3)
	few := page(3)
	park(3, 40)
	// (A read or two of the gateway's own background work may fall in
	// the window; a count from the store would read every request.)
	if many := page(40); many > few+3 {
		t.Fatalf("a page read etcd %v times with 40 pending, %v with 3: the waiting count grows with the store", many, few)
	}

	watchers := etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	for range 20 {
		req, _ := http.NewRequestWithContext(ctx, "GET", h.GW.URL+"/.approvals/live", nil)
		req.Header.Set("Authorization", "Bearer "+bob)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatal(resp, err)
		}
		defer resp.Body.Close()
		buf := make([]byte, 8)
		if _, err := resp.Body.Read(buf); err != nil {
			t.Fatal(err)
		}
	}
	if n := etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total"); n != watchers {
		t.Fatalf("20 live pages took etcd from %v watches to %v: each should share the gateway's one", watchers, n)
	}
}
