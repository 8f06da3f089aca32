package approvals

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func sealer(t *testing.T, keys ...string) *Sealer {
	t.Helper()
	var kb [][]byte
	for _, k := range keys {
		kb = append(kb, []byte(strings.Repeat(k, 32)[:32]))
	}
	s, err := NewSealer(kb, []string{"X-Api-Key"})
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
	policyDir := writePolicy(t, autoPolicy)
	a := newHarness(t, policyDir, func(o *Options) { o.Sealer = sealer(t, "a") })
	alice, bob, carol := a.token("alice"), a.token("bob", "approvers"), a.token("carol", "approvers")
	park := func(path string) string {
		return a.expect(a.do("POST", path, alice, `{}`, "Approval-Justification", "j", "X-Api-Key", "k-secret-123"), http.StatusAccepted, "").str("id")
	}
	id := park("/scripts/1")
	if storeHolds(t, a.cli, alice) || storeHolds(t, a.cli, "k-secret-123") {
		t.Fatal("a credential is stored in plain text")
	}
	a.approve(bob, id)
	if res := a.approve(carol, id); res.str("status") != "completed" {
		t.Fatalf("auto-complete: %s", res.raw)
	}
	calls := a.backend.mutating()
	if len(calls) != 1 || calls[0].Header.Get("Authorization") != "Bearer "+alice || calls[0].Header.Get("X-Api-Key") != "k-secret-123" {
		t.Fatalf("replay did not carry the sealed credentials: %+v", calls)
	}
	resp, _ := a.cli.Get(context.Background(), "/approvals/sealed/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if resp.Count != 0 {
		t.Fatal("sealed credentials outlive the request")
	}

	// Rotation: a gateway with a new key first and the old one second opens
	// what the old key sealed.
	rotated := newHarnessOn(t, a.cli, a.etcd, policyDir, func(o *Options) { o.Sealer = sealer(t, "b", "a") })
	id2 := park("/scripts/2")
	rotated.approve(bob, id2)
	if res := rotated.approve(carol, id2); res.str("status") != "completed" || rotated.backend.mutating()[0].Header.Get("X-Api-Key") != "k-secret-123" {
		t.Fatalf("rotated key: %s", res.raw)
	}
	// Without the old key, the replay fails rather than go out without
	// its credentials.
	newOnly := newHarnessOn(t, a.cli, a.etcd, policyDir, func(o *Options) { o.Sealer = sealer(t, "b") })
	id3 := park("/scripts/3")
	newOnly.approve(bob, id3)
	res := newOnly.approve(carol, id3)
	if res.str("status") != "failed" || !strings.Contains(res.raw, "not configured") || len(newOnly.backend.mutating()) != 0 {
		t.Fatalf("unknown key: %s", res.raw)
	}
	if _, err := NewSealer([][]byte{[]byte("short")}, nil); err == nil {
		t.Fatal("a short key was accepted")
	}
}
