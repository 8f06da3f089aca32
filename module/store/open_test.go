package store

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/record"
)

// followed starts s's view of the open requests and waits until it is read.
func followed(t *testing.T, s *Store) {
	t.Helper()
	testkit.Run(t, s.Open().Run)
	testkit.Run(t, s.Feed().Run)
	testkit.WaitFor(t, s.Open().Ready)
}

// A completion is two etcd round trips once this gateway's view has seen
// the approval: the claim (which reads the body and sealed credentials in
// its own transaction) and the outcome (written from the claim, not read
// again). Reading a request with its body is one.
func TestCompletionIsTwoRoundTrips(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, calls := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	followed(t, a)
	alice := record.Principal{Subject: "alice", Groups: []string{"ops"}}
	bob := record.Principal{Subject: "bob", Groups: []string{"approvers"}}
	r := newRecord("alice", "apps/1")
	if err := b.Create(ctx, r, []byte(`{"a":1}`), CreateOptions{Sealed: []byte("sealed")}); err != nil {
		t.Fatal(err)
	}
	// Approved through the other gateway: a learns of it by its watch.
	if _, err := b.Mutate(ctx, r.ID, "", func(rec *record.Record) error {
		return rec.Approve(bob, record.ApproveInput{}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { _, _, ok := a.Open().stored(r.ID); return ok })
	// And the audit chain's head by its audit feed.
	testkit.WaitFor(t, func() bool { h := a.chain.seen.Load(); return h != nil && h.Seq == 1 })

	before := calls.Load()
	rec, c, err := a.Claim(ctx, r.ID, "", func(rec *record.Record) error { return rec.Claim(alice, time.Now()) })
	if err != nil || rec.Status != record.Completing || string(c.Body) != `{"a":1}` || string(c.Sealed) != "sealed" {
		t.Fatalf("claim: %v %+v %q %q", err, rec, c.Body, c.Sealed)
	}
	final, err := a.MutateFrom(ctx, rec, c.Rev, "", func(rec *record.Record) error {
		return rec.Finish(record.Result{Status: 200}, time.Now())
	})
	if err != nil || final.Status != record.Completed {
		t.Fatal(final, err)
	}
	if n := calls.Load() - before; n != 2 {
		t.Fatalf("a completion took %d etcd round trips, want 2 (claim, outcome)", n)
	}
	stored, _, err := b.Get(ctx, r.ID)
	if err != nil || stored.Status != record.Completed || len(stored.History) != len(final.History) {
		t.Fatalf("stored %+v, %v; want the completed record", stored, err)
	}

	before = calls.Load()
	got, _, body, err := a.GetWithPayload(ctx, r.ID)
	if err != nil || got.ID != r.ID || string(body) != `{"a":1}` {
		t.Fatal(got, body, err)
	}
	if n := calls.Load() - before; n != 1 {
		t.Fatalf("reading a request with its body took %d round trips, want 1", n)
	}
}

// A claim from a stale view is still fenced: when the request changed
// since the view saw it (canceled through another gateway before a's
// watch told it), the claim is refused on what is stored.
func TestClaimFromAStaleViewIsFenced(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, _ := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	alice := record.Principal{Subject: "alice", Groups: []string{"ops"}}
	bob := record.Principal{Subject: "bob", Groups: []string{"approvers"}}
	r := newRecord("alice", "apps/1")
	if err := b.Create(ctx, r, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Mutate(ctx, r.ID, "", func(rec *record.Record) error {
		return rec.Approve(bob, record.ApproveInput{}, time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	followed(t, a)
	raw, rev, ok := a.Open().stored(r.ID)
	if !ok {
		t.Fatal("the view does not hold the approved request")
	}
	if _, err := b.Mutate(ctx, r.ID, "", func(rec *record.Record) error { return rec.Cancel(alice, "", time.Now()) }); err != nil {
		t.Fatal(err)
	}
	// Put the view back to what it saw before the cancel, as a watch that
	// has not delivered yet would leave it.
	a.Open().mu.Lock()
	a.Open().recs[r.ID], _ = a.Open().newOpenEntry(raw, rev)
	a.Open().mu.Unlock()
	rec, _, err := a.Claim(ctx, r.ID, "", func(rec *record.Record) error { return rec.Claim(alice, time.Now()) })
	var rerr *record.Error
	if err == nil || !errors.As(err, &rerr) || rec.Status != record.Canceled {
		t.Fatalf("claim of a canceled request: %+v, %v; want refused on the stored, canceled record", rec, err)
	}
}

// The view follows the store: parks appear, approvals show, ended requests
// leave it, and each change reaches every subscriber of the one watch.
func TestOpenViewFollowsTheStore(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, _ := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	old := newRecord("alice", "apps/old")
	if err := b.Create(ctx, old, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	followed(t, a)
	subs := make([]<-chan *record.Record, 3)
	for i := range subs {
		ch, stop := a.Open().Subscribe(8)
		t.Cleanup(stop)
		subs[i] = ch
	}
	open := func() map[string]record.Status {
		m := map[string]record.Status{}
		a.Open().Each(func(r *OpenRequest) bool { m[r.ID] = r.Status; return true })
		return m
	}
	if got := open(); got[old.ID] != record.NeedsApproval || len(got) != 1 {
		t.Fatalf("primed view %v", got)
	}
	r := newRecord("alice", "apps/new")
	if err := b.Create(ctx, r, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { return open()[r.ID] == record.NeedsApproval })
	for i, ch := range subs {
		select {
		case got := <-ch:
			if got.ID != r.ID {
				t.Fatalf("subscriber %d got %s", i, got.ID)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("subscriber %d got nothing", i)
		}
	}
	if _, err := b.Mutate(ctx, old.ID, "", func(rec *record.Record) error {
		return rec.Cancel(record.Principal{Subject: "alice"}, "", time.Now())
	}); err != nil {
		t.Fatal(err)
	}
	testkit.WaitFor(t, func() bool { _, ok := open()[old.ID]; return !ok })
}

// What the view keeps of a request answers "may this person approve it?"
// as the record itself does (record.Record.Can), for the console's count.
func TestOpenRequestApprovableAgreesWithCan(t *testing.T) {
	s := newStore(t)
	bob := record.Principal{Subject: "bob", Groups: []string{"approvers"}}
	fresh := newRecord("alice", "apps/1", "approvers", "security")
	approved := newRecord("alice", "apps/2", "approvers", "security")
	if err := approved.Approve(bob, record.ApproveInput{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	done := newRecord("alice", "apps/3")
	if err := done.Approve(bob, record.ApproveInput{}, time.Now()); err != nil || done.Status != record.Approved {
		t.Fatal(done.Status, err)
	}
	people := []record.Principal{
		{Subject: "alice", Groups: []string{"approvers"}}, {Subject: "ALICE", Groups: []string{"approvers"}},
		bob, {Subject: "Bob", Groups: []string{"approvers"}}, {Subject: "carol", Groups: []string{"security"}},
		{Subject: "dave", Groups: []string{"ops"}}, {Subject: "erin", Groups: []string{"approvers", "security"}},
	}
	for _, rec := range []*record.Record{fresh, approved, done} {
		raw, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		e, _ := s.Open().newOpenEntry(raw, 1)
		for _, p := range people {
			want := rec.Can(record.ActionApprove, p) == nil
			if got := e.Approvable(s.subjectKey(p.Subject), p.Groups); got != want {
				t.Errorf("%s on %s (%s): view says %v, the record %v", p.Subject, rec.Resource, rec.Status, got, want)
			}
		}
	}
}

// The view catches up with writes it does not follow: after a write under
// another prefix, CaughtUp learns the store's revision from the watch's
// progress notice instead of waiting for a request to change.
func TestOpenViewCatchesUpWithOtherWrites(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, _ := countingStore(t, srv.Endpoint)
	followed(t, a)
	if err := a.Create(ctx, newRecord("alice", "apps/1"), nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := a.cli.Put(ctx, a.prefix+"elsewhere", "x"); err != nil {
		t.Fatal(err)
	}
	if !a.Open().CaughtUp(ctx, 10*time.Second) {
		t.Fatal("the view did not catch up with a write it does not follow")
	}
}
