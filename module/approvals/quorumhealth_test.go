package approvals_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// seenMembers waits until n subjects are noted as members of group.
func seenMembers(t *testing.T, h *approvalstest.Harness, group string, n int64) {
	t.Helper()
	testkit.WaitFor(t, func() bool {
		resp, err := h.Cli.Get(context.Background(), "/approvals/members/"+group+"/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == n
	})
}

// TestParkWarnsOfAQuorumThatCannotBeMet: a park whose policy asks two
// approvals of a group in which the gateways have seen one member besides
// the requester carries a warning in its record; once a second member has
// been seen, the next park carries none. The requester's own membership
// does not count.
func TestParkWarnsOfAQuorumThatCannotBeMet(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, wipePolicy), nil)
	alice, bob, carol := h.Token("alice", "it-ops", "approvers"), h.Token("bob", "approvers"), h.Token("carol", "approvers")
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", bob, ""), http.StatusOK, "")
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusOK, "")
	seenMembers(t, h, "approvers", 2) // bob, and alice, the requester

	id := h.Park(alice, "POST", "/devices/1/wipe", "")
	warnings, _ := h.Record(alice, id).Body["warnings"].([]any)
	if len(warnings) != 1 || !strings.Contains(warnings[0].(string), "group approvers must give 2 approval(s), but only 1 member has been seen in it in the last 90 days besides the requester") {
		t.Fatalf("warnings %v", warnings)
	}

	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", carol, ""), http.StatusOK, "")
	seenMembers(t, h, "approvers", 3)
	id = h.Park(alice, "POST", "/devices/2/wipe", "")
	if w, ok := h.Record(alice, id).Body["warnings"]; ok {
		t.Fatalf("with two other members seen, the park warns %v", w)
	}
}
