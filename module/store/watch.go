package store

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SharedSecret returns the secret stored under name, creating it (32
// random bytes) if absent, so that every gateway on the store uses the same
// one.
func (s *Store) SharedSecret(ctx context.Context, name string) ([]byte, error) {
	key := s.prefix + "secrets/" + name
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(fresh))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	return resp.Responses[0].GetResponseRange().Kvs[0].Value, nil
}

// follow watches the keys under prefix after revision rev (0: from now)
// until ctx ends, passing each batch of events to fn with the revision
// the store had when it was sent (progress notifications, with no
// events, too). A broken watch (lost
// leader, store down, compaction) is resumed after a pause from the last
// revision seen; resumed is called then, since events may have been missed
// (always so after compaction, when it goes on from now).
func (s *Store) follow(ctx context.Context, prefix string, rev int64, fn func(int64, []*clientv3.Event), resumed func()) {
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev+1))
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wc := s.cli.Watch(wctx, prefix, opts...)
	watch:
		for {
			select {
			case <-ctx.Done():
				// Do not wait for the watch to wind down: with the store
				// unreachable that can take long.
				cancel()
				return
			case resp, ok := <-wc:
				if !ok || resp.Err() != nil {
					if resp.CompactRevision > 0 {
						rev = 0
					}
					break watch
				}
				rev = resp.Header.Revision
				fn(rev, resp.Events)
			}
		}
		cancel()
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
		resumed()
	}
}

// ErrCompacted says a watch asked for history that etcd no longer keeps:
// the caller must re-list.
var ErrCompacted = errors.New("the requested events were compacted away: re-list")

// AuditCursor positions a reader of the audit log: the etcd revision of an
// event's transaction and its index within it. It is an event's stable id.
type AuditCursor struct {
	Rev   int64
	Index int
}

// String formats the cursor as "<rev>-<index>".
func (c AuditCursor) String() string { return fmt.Sprintf("%d-%d", c.Rev, c.Index) }

// ParseAuditCursor reads "<rev>-<index>".
func ParseAuditCursor(s string) (AuditCursor, error) {
	var c AuditCursor
	if _, err := fmt.Sscanf(s, "%d-%d", &c.Rev, &c.Index); err != nil || c.Rev <= 0 || c.Index < 0 {
		return AuditCursor{}, fmt.Errorf("%q is not an event id", s)
	}
	return c, nil
}

// Revision returns the store's current revision.
func (s *Store) Revision(ctx context.Context) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"audit/", clientv3.WithCountOnly())
	if err != nil {
		return 0, unavailable(err)
	}
	return resp.Header.Revision, nil
}

// WatchAudit calls fn with every audit event after the cursor after,
// in order, until ctx ends or fn fails (its error is returned). It is
// served from the gateway's audit feed (one watch for every stream) while
// the feed holds every event after after; otherwise, and for a stream
// that falls too far behind, from a watch of its own. When the events
// asked for were compacted away it returns ErrCompacted.
func (s *Store) WatchAudit(ctx context.Context, after AuditCursor, fn func(AuditCursor, record.AuditEvent) error) error {
	after, done, err := s.audit.fromFeed(ctx, after, fn)
	if done || ctx.Err() != nil {
		return err
	}
	return s.watchAuditAlone(ctx, after, fn)
}

// watchAuditAlone is WatchAudit with a watch of its own.
func (s *Store) watchAuditAlone(ctx context.Context, after AuditCursor, fn func(AuditCursor, record.AuditEvent) error) error {
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	wc := s.cli.Watch(wctx, s.prefix+"audit/", clientv3.WithPrefix(), clientv3.WithRev(after.Rev))
	for {
		select {
		case <-ctx.Done():
			return nil
		case resp, ok := <-wc:
			if !ok {
				return unavailable(errors.New("audit watch closed"))
			}
			if resp.CompactRevision > 0 {
				return ErrCompacted
			}
			if err := resp.Err(); err != nil {
				return unavailable(err)
			}
			idx, rev := 0, int64(0)
			for _, ev := range resp.Events {
				if ev.Type != clientv3.EventTypePut || ev.Kv.CreateRevision != ev.Kv.ModRevision {
					continue // audit events are only ever created
				}
				if ev.Kv.ModRevision != rev {
					rev, idx = ev.Kv.ModRevision, 0
				} else {
					idx++
				}
				cur := AuditCursor{Rev: rev, Index: idx}
				if cur.Rev < after.Rev || (cur.Rev == after.Rev && cur.Index <= after.Index) {
					continue
				}
				var e record.AuditEvent
				if err := json.Unmarshal(ev.Kv.Value, &e); err != nil {
					continue
				}
				if err := fn(cur, e); err != nil {
					return err
				}
			}
		}
	}
}
