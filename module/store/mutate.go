package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Reading and changing requests: every change is one transaction fenced
// on the record's mod revision, with its audit events inside.

// Get returns a request and its mod revision.
func (s *Store) Get(ctx context.Context, id string) (_ *record.Record, _ int64, err error) {
	defer s.timed("get", time.Now(), &err)
	if !ValidID(id) {
		return nil, 0, ErrNotFound
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.requestKey(id))
	if err != nil {
		return nil, 0, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, ErrNotFound
	}
	rec, err := decode(resp.Kvs[0].Value)
	if err != nil {
		return nil, 0, err
	}
	return rec, resp.Kvs[0].ModRevision, nil
}

// Payload returns the parked body of a request.
func (s *Store) Payload(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.payloadKey(id))
	if err != nil {
		return nil, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, ErrNotFound
	}
	return resp.Kvs[0].Value, nil
}

// update writes rec if its stored mod revision is still rev, with audit
// events for the history events after the first seen, releasing the
// resource claim and the pending index when rec is terminal. On a lost race
// it returns a *conflictError with the current record.
func (s *Store) update(ctx context.Context, rec *record.Record, rev int64, seen int, clientIP string) (_ int64, err error) {
	defer s.timed("update", time.Now(), &err)
	val, err := json.Marshal(rec)
	if err != nil {
		return 0, err
	}
	key := s.requestKey(rec.ID)
	ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
	if seen < len(rec.History) {
		audit, err := s.auditOps(rec, rec.History[seen:], clientIP)
		if err != nil {
			return 0, err
		}
		ops = append(ops, audit...)
	}
	if rec.Status.Terminal() {
		claim := s.resourceKey(rec.Resource)
		ops = append(ops,
			clientv3.OpDelete(s.pendingIndex(rec.Requester.Subject)+rec.ID),
			clientv3.OpDelete(s.sealedKey(rec.ID)),
			clientv3.OpTxn(
				[]clientv3.Cmp{clientv3.Compare(clientv3.Value(claim), "=", rec.ID)},
				[]clientv3.Op{clientv3.OpDelete(claim)}, nil))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(ops...).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return 0, unavailable(err)
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0, ErrNotFound
		}
		cur, err := decode(kvs[0].Value)
		if err != nil {
			return 0, err
		}
		return 0, &conflictError{rec: cur, rev: kvs[0].ModRevision}
	}
	return resp.Header.Revision, nil
}

// maxAttempts bounds the retries of a contended write.
const maxAttempts = 20

// Mutate reads a request, applies fn and writes the result, fenced on the
// mod revision it read, with an audit event (carrying clientIP) for every
// history event fn added; when another writer wins, fn is applied again to
// the newer record. An error from fn is returned as is, with the record as
// read, and nothing is written. A fn that leaves the record unchanged
// writes nothing.
func (s *Store) Mutate(ctx context.Context, id, clientIP string, fn func(*record.Record) error) (*record.Record, error) {
	rec, rev, err := s.Get(ctx, id)
	if err != nil {
		return nil, err
	}
	for range maxAttempts {
		seen := len(rec.History)
		if err := fn(rec); err != nil {
			return rec, err
		}
		if len(rec.History) == seen {
			return rec, nil
		}
		_, err := s.update(ctx, rec, rev, seen, clientIP)
		var c *conflictError
		if errors.As(err, &c) {
			rec, rev = c.rec, c.rev
			continue
		}
		if err != nil {
			return nil, err
		}
		return rec, nil
	}
	return nil, unavailable(fmt.Errorf("request %s: too much contention", id))
}

func decode(b []byte) (*record.Record, error) {
	var rec record.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("decoding stored request: %w", err)
	}
	return &rec, nil
}
