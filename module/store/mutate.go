package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
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

// GetWithPayload returns a request, its mod revision and its parked body,
// read in one round trip.
func (s *Store) GetWithPayload(ctx context.Context, id string) (_ *record.Record, _ int64, _ []byte, err error) {
	defer s.timed("get", time.Now(), &err)
	rec, rev, vals, err := s.getWith(ctx, id, s.payloadKey(id))
	if err != nil {
		return nil, 0, nil, err
	}
	return rec, rev, orEmpty(vals[0]), nil
}

// getWith reads request id and, in the same round trip, the keys extra;
// their values come back in order (nil when absent).
func (s *Store) getWith(ctx context.Context, id string, extra ...string) (*record.Record, int64, [][]byte, error) {
	if !ValidID(id) {
		return nil, 0, nil, ErrNotFound
	}
	ops := []clientv3.Op{clientv3.OpGet(s.requestKey(id))}
	for _, k := range extra {
		ops = append(ops, clientv3.OpGet(k))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, nil, unavailable(err)
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return nil, 0, nil, ErrNotFound
	}
	rec, err := decode(kvs[0].Value)
	if err != nil {
		return nil, 0, nil, err
	}
	vals := make([][]byte, len(extra))
	for i, r := range resp.Responses[1:] {
		vals[i] = value(r)
	}
	return rec, kvs[0].ModRevision, vals, nil
}

// value is the value a read in a transaction found, nil when none.
func value(r *etcdserverpb.ResponseOp) []byte {
	if kvs := r.GetResponseRange().Kvs; len(kvs) > 0 {
		return kvs[0].Value
	}
	return nil
}

// orEmpty is b, or an empty body for a request stored without one.
func orEmpty(b []byte) []byte {
	if b == nil {
		return []byte{}
	}
	return b
}

// update writes rec if its stored mod revision is still rev, with audit
// events for the history events after the first seen, releasing the
// resource claim and the pending index when rec is terminal; reads are
// answered in the same transaction. It returns the revision written and
// the answers to reads. On a lost race it returns a *conflictError with
// the current record.
func (s *Store) update(ctx context.Context, rec *record.Record, rev int64, seen int, clientIP string, reads []clientv3.Op) (_ int64, _ []*etcdserverpb.ResponseOp, err error) {
	defer s.timed("update", time.Now(), &err)
	val, err := json.Marshal(rec)
	if err != nil {
		return 0, nil, err
	}
	key := s.requestKey(rec.ID)
	ops := []clientv3.Op{clientv3.OpPut(key, string(val))}
	var audit []record.AuditEvent
	if seen < len(rec.History) {
		if audit, err = s.auditEvents(rec, rec.History[seen:], clientIP); err != nil {
			return 0, nil, err
		}
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
	writes := len(ops)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.ModRevision(key), "=", rev)},
		append(ops, reads...), audit, []clientv3.Op{clientv3.OpGet(key)})
	if err != nil {
		return 0, nil, err
	}
	if !resp.Succeeded {
		kvs := resp.Responses[0].GetResponseRange().Kvs
		if len(kvs) == 0 {
			return 0, nil, ErrNotFound
		}
		cur, err := decode(kvs[0].Value)
		if err != nil {
			return 0, nil, err
		}
		return 0, nil, &conflictError{rec: cur, rev: kvs[0].ModRevision}
	}
	return resp.Header.Revision, resp.Responses[writes:], nil
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
	rec, _, _, err := s.mutate(ctx, id, nil, 0, clientIP, fn, nil)
	return rec, err
}

// MutateFrom is Mutate starting from rec as stored at mod revision rev
// (what this gateway wrote last) instead of reading it: one round trip
// when nothing changed it since.
func (s *Store) MutateFrom(ctx context.Context, rec *record.Record, rev int64, clientIP string, fn func(*record.Record) error) (*record.Record, error) {
	rec, _, _, err := s.mutate(ctx, rec.ID, rec, rev, clientIP, fn, nil)
	return rec, err
}

// Claimed is what a claim read with its write: the request's parked body
// and its sealed replay credentials (nil without), and the revision
// written, from which the outcome is written by MutateFrom.
type Claimed struct {
	Rev    int64
	Body   []byte
	Sealed []byte
}

// Claim is Mutate for a claim (fn must change the record): the body and
// the sealed credentials are read in the claim's own transaction. When
// this gateway's view holds the approved request (Open), the claim is
// written without a read: one round trip.
func (s *Store) Claim(ctx context.Context, id, clientIP string, fn func(*record.Record) error) (*record.Record, Claimed, error) {
	var rec *record.Record
	var rev int64
	if raw, r, ok := s.open.stored(id); ok {
		if cached, err := decode(raw); err == nil {
			rec, rev = cached, r
		}
	}
	reads := []clientv3.Op{clientv3.OpGet(s.payloadKey(id)), clientv3.OpGet(s.sealedKey(id))}
	rec, rev, resps, err := s.mutate(ctx, id, rec, rev, clientIP, fn, reads)
	if err != nil || resps == nil {
		if err == nil {
			err = errors.New("the claim changed nothing")
		}
		return rec, Claimed{}, err
	}
	return rec, Claimed{Rev: rev, Body: orEmpty(value(resps[0])), Sealed: value(resps[1])}, nil
}

// mutate applies fn to rec as stored at rev (read first when rec is nil)
// and writes it, retrying on lost races; reads are answered with the
// write. A record taken from this gateway's view may be stale: when fn
// refuses it, the record is read afresh and fn tried again, so no refusal
// rests on a stale view.
func (s *Store) mutate(ctx context.Context, id string, rec *record.Record, rev int64, clientIP string, fn func(*record.Record) error, reads []clientv3.Op) (*record.Record, int64, []*etcdserverpb.ResponseOp, error) {
	known := rec != nil
	if !known {
		var err error
		if rec, rev, err = s.Get(ctx, id); err != nil {
			return nil, 0, nil, err
		}
	}
	for range maxAttempts {
		seen := len(rec.History)
		if err := fn(rec); err != nil {
			if !known {
				return rec, rev, nil, err
			}
			// Refused on what this gateway last knew: ask the store.
			known = false
			if rec, rev, err = s.Get(ctx, id); err != nil {
				return nil, 0, nil, err
			}
			continue
		}
		if len(rec.History) == seen {
			return rec, rev, nil, nil
		}
		newRev, resps, err := s.update(ctx, rec, rev, seen, clientIP, reads)
		var c *conflictError
		if errors.As(err, &c) {
			rec, rev, known = c.rec, c.rev, false
			continue
		}
		if err != nil {
			return nil, 0, nil, err
		}
		return rec, newRev, resps, nil
	}
	return nil, 0, nil, unavailable(fmt.Errorf("request %s: too much contention", id))
}

func decode(b []byte) (*record.Record, error) {
	var rec record.Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return nil, fmt.Errorf("decoding stored request: %w", err)
	}
	return &rec, nil
}

// ReadClaimed reads, in one round trip, what the replay of a request
// claimed by another write needs: the record as stored, with its mod
// revision, the parked body and the sealed credentials.
func (s *Store) ReadClaimed(ctx context.Context, id string) (*record.Record, Claimed, error) {
	rec, rev, vals, err := s.getWith(ctx, id, s.payloadKey(id), s.sealedKey(id))
	if err != nil {
		return nil, Claimed{}, err
	}
	return rec, Claimed{Rev: rev, Body: orEmpty(vals[0]), Sealed: vals[1]}, nil
}
