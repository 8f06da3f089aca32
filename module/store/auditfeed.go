package store

import (
	"context"
	"encoding/json"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The audit feed: one watch per gateway on the audit log, fanned out to
// every event stream the gateway serves, with the latest events kept so
// that a stream resuming from a recent event id is served from memory.
// etcd sees one watch from a gateway however many streams are open; only
// a stream resuming from further back than the feed keeps reads history
// with a watch of its own.

// feedKeep is how many of the latest events the feed keeps for resuming
// streams; feedBuffer how many a stream may fall behind before it is
// dropped from the feed (it then catches up on its own).
const (
	feedKeep   = 1024
	feedBuffer = 64
)

// auditItem is one audit event with its cursor: as stored, and decoded
// once a stream needs it.
type auditItem struct {
	cur AuditCursor
	raw []byte
	e   *record.AuditEvent
}

// decoded decodes it if it is not yet (under the feed's lock); false
// when it is not an event.
func (it *auditItem) decoded() bool {
	if it.e == nil {
		var e record.AuditEvent
		if json.Unmarshal(it.raw, &e) != nil {
			return false
		}
		it.e, it.raw = &e, nil
	}
	return true
}

// AuditFeed is the gateway's shared watch of the audit log.
type AuditFeed struct {
	s       *Store
	mu      sync.Mutex
	running bool
	// following: every event after covered has been or will be seen by
	// the feed; recent holds the kept ones (after covered), in order.
	following bool
	covered   AuditCursor
	recent    []*auditItem
	subs      map[chan *auditItem]struct{}
}

func newAuditFeed(s *Store) *AuditFeed {
	return &AuditFeed{s: s, subs: map[chan *auditItem]struct{}{}}
}

// Feed returns the store's audit feed; Run keeps it.
func (s *Store) Feed() *AuditFeed { return s.audit }

// Subscribers is the number of streams the feed serves.
func (f *AuditFeed) Subscribers() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.subs)
}

// Run follows the audit log with one watch until ctx ends. When the watch
// breaks (events may have been missed), every stream is dropped from the
// feed, to catch up on its own, and the feed starts again from now.
func (f *AuditFeed) Run(ctx context.Context) {
	f.mu.Lock()
	if f.running {
		f.mu.Unlock()
		return // one watch per store
	}
	f.running = true
	f.mu.Unlock()
	defer func() {
		f.restart(0)
		f.mu.Lock()
		f.running = false
		f.mu.Unlock()
	}()
	for ctx.Err() == nil {
		rev, err := f.s.Revision(ctx)
		if err != nil {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		f.restart(rev)
		fctx, cancel := context.WithCancel(ctx)
		f.s.follow(fctx, f.s.prefix+"audit/", rev, f.apply, func() {
			f.restart(0)
			cancel() // start again from now
		})
		cancel()
	}
}

// restart drops every stream and, with rev > 0, follows from after rev.
func (f *AuditFeed) restart(rev int64) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for ch := range f.subs {
		close(ch)
		delete(f.subs, ch)
	}
	f.recent = nil
	f.following = rev > 0
	// Nothing at rev or before is the feed's: a stream must be past it.
	f.covered = AuditCursor{Rev: rev, Index: int(^uint(0) >> 1)}
}

// apply passes a batch of watched events to the streams, as WatchAudit
// numbers them.
func (f *AuditFeed) apply(_ int64, evs []*clientv3.Event) {
	f.mu.Lock()
	defer f.mu.Unlock()
	idx, rev := 0, int64(0)
	f.s.learnHead(evs)
	for _, ev := range evs {
		if ev.Type != clientv3.EventTypePut || ev.Kv.CreateRevision != ev.Kv.ModRevision {
			continue
		}
		if ev.Kv.ModRevision != rev {
			rev, idx = ev.Kv.ModRevision, 0
		} else {
			idx++
		}
		it := &auditItem{cur: AuditCursor{Rev: rev, Index: idx}, raw: ev.Kv.Value}
		if len(f.subs) > 0 && !it.decoded() {
			continue
		}
		if len(f.recent) == feedKeep {
			f.covered = f.recent[0].cur
			f.recent = append(f.recent[:0], f.recent[1:]...)
		}
		f.recent = append(f.recent, it)
		for ch := range f.subs {
			select {
			case ch <- it:
			default:
				// Too far behind: dropped, it catches up on its own.
				close(ch)
				delete(f.subs, ch)
			}
		}
	}
}

// subscribe returns the kept events after after and a channel of the
// events to come, when the feed has every event after after; ok is false
// otherwise.
func (f *AuditFeed) subscribe(after AuditCursor) (kept []*auditItem, ch chan *auditItem, ok bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if !f.following || after.before(f.covered) {
		return nil, nil, false
	}
	for _, it := range f.recent {
		if after.before(it.cur) && it.decoded() {
			kept = append(kept, it)
		}
	}
	ch = make(chan *auditItem, feedBuffer)
	f.subs[ch] = struct{}{}
	return kept, ch, true
}

func (f *AuditFeed) unsubscribe(ch chan *auditItem) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.subs[ch]; ok {
		delete(f.subs, ch)
		close(ch)
	}
}

// before reports whether c comes before d.
func (c AuditCursor) before(d AuditCursor) bool {
	return c.Rev < d.Rev || (c.Rev == d.Rev && c.Index < d.Index)
}

// fromFeed serves a stream from the feed while it can: it returns done
// when the stream ended (ctx, or fn's error), and otherwise the last
// cursor passed to fn, from which the stream goes on.
func (f *AuditFeed) fromFeed(ctx context.Context, after AuditCursor, fn func(AuditCursor, record.AuditEvent) error) (AuditCursor, bool, error) {
	kept, ch, ok := f.subscribe(after)
	if !ok {
		return after, false, nil
	}
	defer f.unsubscribe(ch)
	for _, it := range kept {
		if ctx.Err() != nil {
			return after, true, nil
		}
		if err := fn(it.cur, *it.e); err != nil {
			return after, true, err
		}
		after = it.cur
	}
	for {
		select {
		case <-ctx.Done():
			return after, true, nil
		case it, open := <-ch:
			if !open {
				return after, false, nil
			}
			if !after.before(it.cur) {
				continue
			}
			if err := fn(it.cur, *it.e); err != nil {
				return after, true, err
			}
			after = it.cur
		}
	}
}
