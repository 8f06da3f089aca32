package store

import (
	"fmt"
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
