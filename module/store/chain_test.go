package store

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/module/auditchain"
	"github.com/approval-gateway/gateway/module/record"
)

// Two gateways writing at once (parks, approvals, a dry run, each in its
// own transaction) give one chain: every event a seq of its own, 1 to n
// with no gap, each linked to the one before, the head at the last.
func TestConcurrentWritersMakeOneChain(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, _ := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	bob := record.Principal{Subject: "bob", Groups: []string{"approvers"}}
	var wg sync.WaitGroup
	for i := range 40 {
		s := []*Store{a, b}[i%2]
		wg.Go(func() {
			r := newRecord(fmt.Sprintf("user-%d", i), fmt.Sprintf("apps/%d", i))
			if err := s.Create(ctx, r, nil, CreateOptions{MaxPending: 10}); err != nil {
				t.Error(err)
				return
			}
			if _, err := s.Mutate(ctx, r.ID, "", func(rec *record.Record) error {
				return rec.Approve(bob, record.ApproveInput{}, time.Now())
			}); err != nil {
				t.Error(err)
			}
			if err := s.AppendAudit(ctx, record.AuditEvent{At: time.Now(), Actor: "carol", Action: "dry_run"}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	v := auditchain.NewVerifier(nil)
	q := auditchain.NewSequencer(4096, v.Event)
	if err := a.EachAuditEvent(ctx, func(_ string, raw []byte) bool { return q.Push(raw) }); err != nil {
		t.Fatal(err)
	}
	q.Flush()
	head, err := b.ChainHead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Per request: its approval and a dry run (the test records are
	// created without history).
	if res := v.Finish(&head); !res.OK || res.Checked != 80 || head.Seq != 80 {
		t.Fatalf("%+v, head %+v", res, head)
	}
}

// Writes waiting for the chain go in one transaction when they touch no
// key in common: 32 parks at once take far fewer round trips than 32, and
// the chain holds every event once. Writes to the same keys (two creates
// of one resource) are never in one batch: the second finds the first.
func TestChainedWritesAreBatched(t *testing.T) {
	_, srv := etcdkit.Start(t)
	s, calls := countingStore(t, srv.Endpoint)
	if err := s.AppendAudit(ctx, record.AuditEvent{At: time.Now(), Actor: "carol", Action: "dry_run"}); err != nil {
		t.Fatal(err) // the head is known from here on
	}
	before := calls.Load()
	var wg sync.WaitGroup
	var mu sync.Mutex
	created, pending := 0, 0
	for i := range 32 {
		wg.Go(func() {
			r := newRecord(fmt.Sprintf("user-%d", i), fmt.Sprintf("apps/%d", i%24)) // 8 resources asked twice
			r.History = []record.Event{{At: time.Now(), Actor: r.Requester.Subject, Action: "parked", To: record.NeedsApproval}}
			err := s.Create(ctx, r, nil, CreateOptions{MaxPending: 10})
			var pe *PendingError
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				created++
			case errors.As(err, &pe):
				pending++
			default:
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if created != 24 || pending != 8 {
		t.Fatalf("%d created, %d refused as pending; want 24 and 8", created, pending)
	}
	if n := calls.Load() - before; n >= 32 {
		t.Errorf("32 parks took %d round trips: not batched", n)
	} else {
		t.Logf("32 parks (8 of them refused) in %d round trips", n)
	}
	v := auditchain.NewVerifier(nil)
	q := auditchain.NewSequencer(4096, v.Event)
	if err := s.EachAuditEvent(ctx, func(_ string, raw []byte) bool { return q.Push(raw) }); err != nil {
		t.Fatal(err)
	}
	q.Flush()
	head, _ := s.ChainHead(ctx)
	if res := v.Finish(&head); !res.OK || res.Checked != 25 {
		t.Fatalf("%+v %+v", res, res.FirstBad)
	}
}

// Writes are batched up to a size etcd takes in one request: four parks
// with bodies of 700 KB each, at once, all go through (together they would
// pass etcd's 1.5 MiB request limit).
func TestLargeWritesAreNotBatchedPastEtcdsLimit(t *testing.T) {
	_, srv := etcdkit.Start(t)
	s, _ := countingStore(t, srv.Endpoint)
	body := []byte(strings.Repeat("x", 700<<10))
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Go(func() {
			r := newRecord(fmt.Sprintf("user-%d", i), fmt.Sprintf("apps/%d", i))
			r.History = []record.Event{{At: time.Now(), Actor: r.Requester.Subject, Action: "parked", To: record.NeedsApproval}}
			if err := s.Create(ctx, r, body, CreateOptions{}); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
}
