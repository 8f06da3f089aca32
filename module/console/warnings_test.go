package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/console"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A request's page shows its quorum warning: two approvals asked of a
// group in which one member has been seen.
func TestRequestPageShowsQuorumWarnings(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "two", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 2}]}
`), nil)
	withConsole(t, h.Svc, h.Opts, console.Options{RequestIdentity: true})
	bob := h.Token("bob", "approvers")
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", bob, ""), http.StatusOK, "")
	testkit.WaitFor(t, func() bool {
		resp, err := h.Cli.Get(context.Background(), "/approvals/members/approvers/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 1
	})
	id := h.Park(h.Token("alice", "it-ops"), "DELETE", "/apps/7", "")
	page := h.Do("GET", "/.approvals/requests/"+id, bob, "")
	if page.Status != http.StatusOK || !strings.Contains(page.Raw, `<div class="msg warn">group approvers must give 2 approval(s), but only 1 member has been seen`) {
		t.Fatalf("%d: the page shows no warning:\n%s", page.Status, page.Raw)
	}
}

// A request's page shows the change a parked PATCH will make to its
// target, field by field, read from the backend as the person; a POST's
// page shows none.
func TestRequestPageShowsTheChange(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	withConsole(t, h.Svc, h.Opts, console.Options{RequestIdentity: true})
	bob := h.Token("bob", "approvers")
	id := h.Park(h.Token("alice", "it-ops"), "PATCH", "/apps/1", `{"version": "1.5.0"}`)
	page := h.Do("GET", "/.approvals/requests/"+id, bob, "")
	// The recording backend answers a GET with {"done": "GET /apps/1"}.
	if page.Status != http.StatusOK || !strings.Contains(page.Raw, `<tr class="added"><td><code>/version</code> <span class="muted">added</span></td><td><code></code></td><td><code>&#34;1.5.0&#34;</code></td></tr>`) {
		t.Fatalf("%d: the page shows no change:\n%s", page.Status, page.Raw)
	}
	if calls := h.Backend.Calls(); len(calls) != 1 || calls[0].Method != "GET" || calls[0].Header.Get("Authorization") != "Bearer "+bob {
		t.Fatalf("the backend saw %+v; want one GET with bob's own token", calls)
	}
	id = h.Park(h.Token("alice", "it-ops"), "POST", "/apps", `{"name": "crm"}`)
	if page := h.Do("GET", "/.approvals/requests/"+id, bob, ""); strings.Contains(page.Raw, "<h2>Change</h2>") {
		t.Fatal("a POST's page shows a change")
	}
}
