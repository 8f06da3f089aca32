package store

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/record"
)

// stream is one event stream read through WatchAudit.
type stream struct {
	mu  sync.Mutex
	got []string
}

func (s *stream) actions() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.got...)
}

func (st *stream) run(t *testing.T, s *Store, after AuditCursor) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	t.Cleanup(func() { cancel(); <-done })
	go func() {
		defer close(done)
		_ = s.WatchAudit(ctx, after, func(_ AuditCursor, e record.AuditEvent) error {
			st.mu.Lock()
			st.got = append(st.got, e.Action)
			st.mu.Unlock()
			return nil
		})
	}()
}

// Every event stream of a gateway is served by its one audit watch: with
// 200 streams open, etcd serves one watch more than before the feed, each
// stream gets every event in order, and a stream resuming from a recent
// event gets what followed it from the feed's memory.
func TestAuditFeedIsOneWatch(t *testing.T) {
	_, srv := etcdkit.Start(t)
	s, _ := countingStore(t, srv.Endpoint)
	base := etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total")
	testkit.Run(t, s.Feed().Run)
	testkit.WaitFor(t, func() bool { return etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total") == base+1 })
	rev, err := s.Revision(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := AuditCursor{Rev: rev + 1, Index: -1}
	streams := make([]*stream, 200)
	for i := range streams {
		streams[i] = &stream{}
		streams[i].run(t, s, now)
	}
	testkit.WaitFor(t, func() bool { return s.Feed().Subscribers() == len(streams) })
	if n := etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total"); n != base+1 {
		t.Fatalf("etcd serves %v watches for %d streams, want %v: one", n, len(streams), base+1)
	}
	for i := range 3 {
		if err := s.AppendAudit(ctx, record.AuditEvent{At: time.Now(), Actor: "alice", Action: fmt.Sprint("a", i)}); err != nil {
			t.Fatal(err)
		}
	}
	want := fmt.Sprint([]string{"a0", "a1", "a2"})
	testkit.WaitFor(t, func() bool {
		for _, st := range streams {
			if fmt.Sprint(st.actions()) != want {
				return false
			}
		}
		return true
	})

	// Resuming after a0: a1 and a2 come from the feed's memory, and no
	// watch is added.
	var first AuditCursor
	one := &stream{}
	ctx1, cancel := context.WithCancel(context.Background())
	_ = s.WatchAudit(ctx1, now, func(c AuditCursor, e record.AuditEvent) error {
		if e.Action == "a0" {
			first = c
			cancel()
		}
		return nil
	})
	one.run(t, s, first)
	testkit.WaitFor(t, func() bool { return fmt.Sprint(one.actions()) == fmt.Sprint([]string{"a1", "a2"}) })
	if n := etcdkit.Metric(t, "etcd_debugging_mvcc_watcher_total"); n != base+1 {
		t.Fatalf("a resumed stream made etcd serve %v watches, want %v", n, base+1)
	}

	// From before the feed began: a watch of its own reads the history.
	old := &stream{}
	old.run(t, s, AuditCursor{Rev: 1, Index: -1})
	testkit.WaitFor(t, func() bool { return fmt.Sprint(old.actions()) == want })
}
