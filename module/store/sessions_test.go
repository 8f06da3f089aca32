package store

import (
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// TestSessions: a session is open from sign-in until it is closed (on any
// store client) or its lease runs out; only a hash of its id is a key.
func TestSessions(t *testing.T) {
	s := newStore(t)
	other, err := New(s.cli, Options{Prefix: "/test/approvals/"})
	if err != nil {
		t.Fatal(err)
	}
	if open, err := s.SessionOpen(ctx, "never-opened"); err != nil || open {
		t.Fatalf("an unknown session is open: %v %v", open, err)
	}
	if err := s.OpenSession(ctx, "sess-1", time.Hour); err != nil {
		t.Fatal(err)
	}
	if err := s.OpenSession(ctx, "sess-short", time.Second); err != nil {
		t.Fatal(err)
	}
	if open, err := other.SessionOpen(ctx, "sess-1"); err != nil || !open {
		t.Fatalf("an open session is not open on another gateway: %v %v", open, err)
	}
	resp, err := s.cli.Get(ctx, "/test/approvals/sessions/", clientv3.WithPrefix())
	if err != nil || len(resp.Kvs) != 2 || string(resp.Kvs[0].Key) == "/test/approvals/sessions/sess-1" {
		t.Fatalf("session keys: %v %v", resp, err)
	}
	kv, err := s.cli.Get(ctx, s.sessionKey("sess-1"))
	if err != nil || len(kv.Kvs) != 1 {
		t.Fatal(err)
	}
	lease := clientv3.LeaseID(kv.Kvs[0].Lease)
	if err := other.CloseSession(ctx, "sess-1"); err != nil {
		t.Fatal(err)
	}
	if ttl, err := s.cli.TimeToLive(ctx, lease); err != nil || ttl.TTL != -1 {
		t.Fatalf("the closed session's lease lives on: %+v %v", ttl, err)
	}
	if open, _ := s.SessionOpen(ctx, "sess-1"); open {
		t.Fatal("a closed session is still open")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		open, err := s.SessionOpen(ctx, "sess-short")
		if err != nil {
			t.Fatal(err)
		}
		if !open {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("an expired session is still open")
		}
		time.Sleep(200 * time.Millisecond)
	}
}
