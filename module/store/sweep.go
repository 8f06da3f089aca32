package store

import (
	"context"
	"strings"
	"time"

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

// PruneAudit deletes the audit events older than t and returns how many.
func (s *Store) PruneAudit(ctx context.Context, t time.Time) (int64, error) {
	prefix := s.prefix + "audit/"
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, prefix, clientv3.WithRange(prefix+IDFloor(t)))
	if err != nil {
		return 0, unavailable(err)
	}
	return resp.Deleted, nil
}
