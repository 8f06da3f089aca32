package approvals_test

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func sealer(t *testing.T, keys ...string) *approvals.Sealer {
	t.Helper()
	var kb [][]byte
	for _, k := range keys {
		kb = append(kb, []byte(strings.Repeat(k, 32)[:32]))
	}
	s, err := approvals.NewSealer(kb, []string{"X-Api-Key"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// storeHolds reports whether any key or value of the store contains s.
func storeHolds(t *testing.T, cli *clientv3.Client, s string) bool {
	t.Helper()
	resp, err := cli.Get(context.Background(), "/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	for _, kv := range resp.Kvs {
		if bytes.Contains(kv.Value, []byte(s)) || bytes.Contains(kv.Key, []byte(s)) {
			return true
		}
	}
	return false
}

// TestSealedReplayCredentials: with replay_credentials sealed, an
// auto-complete replay carries the requester's original Authorization and
// listed headers, which are stored only sealed, opened only for the replay,
// and gone once the request ends; keys rotate.
func TestSealedReplayCredentials(t *testing.T) {
	policyDir := testkit.WritePolicy(t, autoPolicy)
	a := approvalstest.New(t, policyDir, func(o *approvalstest.Options) { o.Sealer = sealer(t, "a") })
	alice, bob, carol := a.Token("alice"), a.Token("bob", "approvers"), a.Token("carol", "approvers")
	park := func(path string) string {
		return a.Expect(a.Do("POST", path, alice, `{}`, "Approval-Justification", "j", "X-Api-Key", "k-secret-123"), http.StatusAccepted, "").Str("id")
	}
	id := park("/scripts/1")
	if storeHolds(t, a.Cli, alice) || storeHolds(t, a.Cli, "k-secret-123") {
		t.Fatal("a credential is stored in plain text")
	}
	a.Approve(bob, id)
	if res := a.Approve(carol, id); res.Str("status") != "completed" {
		t.Fatalf("auto-complete: %s", res.Raw)
	}
	calls := a.Backend.Mutating()
	if len(calls) != 1 || calls[0].Header.Get("Authorization") != "Bearer "+alice || calls[0].Header.Get("X-Api-Key") != "k-secret-123" {
		t.Fatalf("replay did not carry the sealed credentials: %+v", calls)
	}
	resp, _ := a.Cli.Get(context.Background(), "/approvals/sealed/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Fatal("sealed credentials outlive the request")
	}

	// Rotation: a gateway with a new key first and the old one second opens
	// what the old key sealed.
	rotated := approvalstest.NewOn(t, a.Cli, a.Etcd, policyDir, func(o *approvalstest.Options) { o.Sealer = sealer(t, "b", "a") })
	id2 := park("/scripts/2")
	rotated.Approve(bob, id2)
	if res := rotated.Approve(carol, id2); res.Str("status") != "completed" || rotated.Backend.Mutating()[0].Header.Get("X-Api-Key") != "k-secret-123" {
		t.Fatalf("rotated key: %s", res.Raw)
	}
	// Without the old key, the replay fails rather than go out without
	// its credentials.
	newOnly := approvalstest.NewOn(t, a.Cli, a.Etcd, policyDir, func(o *approvalstest.Options) { o.Sealer = sealer(t, "b") })
	id3 := park("/scripts/3")
	newOnly.Approve(bob, id3)
	res := newOnly.Approve(carol, id3)
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "not configured") || len(newOnly.Backend.Mutating()) != 0 {
		t.Fatalf("unknown key: %s", res.Raw)
	}
	if _, err := approvals.NewSealer([][]byte{[]byte("short")}, nil); err == nil {
		t.Fatal("a short key was accepted")
	}
}
