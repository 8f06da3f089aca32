package store

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/auditchain"
	"github.com/approval-gateway/gateway/module/record"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// sweepBatch is how many keys a sweep reads per round trip.
const sweepBatch = 200

// EachPending calls fn with every pending request (needs_approval,
// approved, completing), found through the pending index, read in batches.
func (s *Store) EachPending(ctx context.Context, fn func(*record.Record) error) error {
	_, err := s.scanPending(ctx, func(kv *mvccpb.KeyValue) error {
		rec, err := decode(kv.Value)
		if err != nil {
			return err
		}
		return fn(rec)
	})
	return err
}

// scanPending calls fn with the stored record of every pending request,
// all read at one revision (the first batch's), which it returns.
func (s *Store) scanPending(ctx context.Context, fn func(*mvccpb.KeyValue) error) (int64, error) {
	prefix := s.prefix + "pending/"
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	var rev int64
	for {
		opts := []clientv3.OpOption{clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(sweepBatch)}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev))
		}
		cctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(cctx, from, opts...)
		if err != nil {
			cancel()
			return 0, unavailable(err)
		}
		if rev == 0 {
			rev = resp.Header.Revision
		}
		gets := make([]clientv3.Op, len(resp.Kvs))
		for i, kv := range resp.Kvs {
			k := string(kv.Key)
			gets[i] = clientv3.OpGet(s.requestKey(k[strings.LastIndexByte(k, '/')+1:]), clientv3.WithRev(rev))
		}
		rs, err := s.readAll(cctx, gets)
		cancel()
		if err != nil {
			return 0, err
		}
		for _, r := range rs {
			if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 { // else ended since the index was read
				if err := fn(kvs[0]); err != nil {
					return 0, err
				}
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return rev, nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// EachCreatedBefore calls fn with every request created before t, oldest
// first, and its mod revision.
func (s *Store) EachCreatedBefore(ctx context.Context, t time.Time, fn func(*record.Record, int64) error) error {
	prefix := s.prefix + "requests/"
	from, end := prefix, prefix+IDFloor(t)
	for {
		cctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(cctx, from, clientv3.WithRange(end), clientv3.WithLimit(sweepBatch))
		cancel()
		if err != nil {
			return unavailable(err)
		}
		for _, kv := range resp.Kvs {
			rec, err := decode(kv.Value)
			if err != nil {
				return err
			}
			if err := fn(rec, kv.ModRevision); err != nil {
				return err
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// Remove deletes a request and everything that refers to it (body, indexes,
// resource claim), if the record is unchanged since rev. It reports whether
// it removed it.
func (s *Store) Remove(ctx context.Context, rec *record.Record, rev int64) (bool, error) {
	key := s.requestKey(rec.ID)
	claim := s.resourceKey(rec.Resource)
	ops := []clientv3.Op{
		clientv3.OpDelete(key),
		clientv3.OpDelete(s.payloadKey(rec.ID)),
		clientv3.OpDelete(s.pendingIndex(rec.Requester.Subject) + rec.ID),
		clientv3.OpDelete(s.sealedKey(rec.ID)),
		clientv3.OpTxn([]clientv3.Cmp{clientv3.Compare(clientv3.Value(claim), "=", rec.ID)},
			[]clientv3.Op{clientv3.OpDelete(claim)}, nil),
	}
	for _, k := range s.indexKeys(rec) {
		ops = append(ops, clientv3.OpDelete(k))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).Then(ops...).Commit()
	if err != nil {
		return false, unavailable(err)
	}
	return resp.Succeeded, nil
}

// PruneAudit deletes the audit events older than t and returns how many,
// keeping the rest of the chain verifiable: first anchor is called with
// the seq and hash of the last event to go, to sign a checkpoint that
// vouches for it, and only then is anything deleted. Only events before
// every kept one in the chain go (one written later by a gateway whose
// clock was behind stays, with those after it).
func (s *Store) PruneAudit(ctx context.Context, t time.Time, anchor func(ctx context.Context, seq int64, hash string) error) (int64, error) {
	prefix := s.prefix + "audit/"
	cut := prefix + IDFloor(t)
	type old struct {
		key string
		auditchain.Link
	}
	var olds []old
	kept := int64(-1) // the lowest seq kept, among the first events after the cut
	err := s.EachAuditEvent(ctx, func(id string, raw []byte) bool {
		var l auditchain.Link
		_ = json.Unmarshal(raw, &l)
		if prefix+id < cut {
			olds = append(olds, old{prefix + id, l})
			return true
		}
		if l.Seq > 0 && (kept < 0 || l.Seq < kept) {
			kept = l.Seq
		}
		return len(olds) > 0 && id < IDFloor(t.Add(time.Minute)) // the first minute after the cut tells
	})
	if err != nil || len(olds) == 0 {
		return 0, err
	}
	if kept < 0 {
		head, err := s.ChainHead(ctx)
		if err != nil {
			return 0, err
		}
		kept = head.Seq + 1
	}
	var last *old
	for i := range olds {
		if o := &olds[i]; o.Seq > 0 && o.Seq < kept && (last == nil || o.Seq > last.Seq) {
			last = o
		}
	}
	if last != nil {
		if last.Seq != kept-1 {
			return 0, fmt.Errorf("the audit event before seq %d is not among those to prune: not pruning", kept)
		}
		if err := anchor(ctx, last.Seq, last.Hash); err != nil {
			return 0, err
		}
		// The checkpoints before it vouch for events that are gone: the
		// anchor is the log's start now.
		cctx, cancel := s.ctx(ctx)
		_, err := s.cli.Delete(cctx, s.prefix+"audit-chain/checkpoints/", clientv3.WithRange(s.checkpointKey(last.Seq)))
		cancel()
		if err != nil {
			return 0, unavailable(err)
		}
	}
	var n int64
	var ops []clientv3.Op
	flush := func() error {
		if len(ops) == 0 {
			return nil
		}
		cctx, cancel := s.ctx(ctx)
		defer cancel()
		resp, err := s.cli.Txn(cctx).Then(ops...).Commit()
		if err != nil {
			return unavailable(err)
		}
		for _, r := range resp.Responses {
			n += r.GetResponseDeleteRange().Deleted
		}
		ops = ops[:0]
		return nil
	}
	for _, o := range olds {
		if o.Seq >= kept {
			continue
		}
		ops = append(ops, clientv3.OpDelete(o.key))
		if len(ops) == 128 {
			if err := flush(); err != nil {
				return n, err
			}
		}
	}
	return n, flush()
}
