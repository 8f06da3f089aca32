package store

import (
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Creating requests: one transaction that stores the record and its body,
// claims the resource, indexes it and appends the audit, fenced on the
// requester's pending count.

// ErrTooManyPending is returned when the requester already has the most
// pending requests allowed.
var ErrTooManyPending = errors.New("too many pending requests")

// CreateOptions are the per-call settings of Create.
type CreateOptions struct {
	// MaxPending caps the requester's pending requests; 0 means no cap.
	MaxPending int
	// ClientIP goes into the audit event.
	ClientIP string
	// Sealed are the sealed replay credentials, kept beside the record
	// (never in it) until the request ends.
	Sealed []byte
}

// Create stores a new request and its body, claims its resource, indexes it
// and appends its audit event, in one transaction. If the resource already
// has a pending request, nothing is written and the error is a
// *PendingError naming it. With a cap on pending requests the transaction
// is fenced on the requester's pending count (see below), so concurrent
// parks, on any gateway, cannot overshoot the cap.
func (s *Store) Create(ctx context.Context, rec *record.Record, body []byte, o CreateOptions) (err error) {
	defer s.timed("create", time.Now(), &err)
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	claim := s.resourceKey(rec.Resource)
	pending := s.pendingIndex(rec.Requester.Subject)
	ops := []clientv3.Op{
		clientv3.OpPut(claim, rec.ID),
		clientv3.OpPut(s.requestKey(rec.ID), string(val)),
		clientv3.OpPut(pending+rec.ID, ""),
	}
	ops = append(ops, s.payloadOps(rec.ID, body)...)
	for _, k := range s.indexKeys(rec) {
		ops = append(ops, clientv3.OpPut(k, ""))
	}
	audit, err := s.auditEvents(rec, rec.History, o.ClientIP)
	if err != nil {
		return err
	}
	if o.Sealed != nil {
		ops = append(ops, clientv3.OpPut(s.sealedKey(rec.ID), string(o.Sealed)))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if o.MaxPending <= 0 {
		resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)},
			ops, audit, []clientv3.Op{clientv3.OpGet(claim)})
		if err != nil {
			return err
		}
		return claimed(resp)
	}
	// The cap is fenced on the requester's pending keys: the write only
	// happens if none changed since the count it relies on. The count is
	// the one this gateway last saw (kept up to date by its own writes), so
	// a park is one round trip; when another gateway parked for the same
	// requester meanwhile, the failed write returns the fresh count and is
	// tried again. A requester's parks on this gateway go one at a time, so
	// they do not fence each other out.
	unlock := s.pending.lock(s.subjectKey(rec.Requester.Subject))
	defer unlock()
	known, fresh := s.pending.get(s.subjectKey(rec.Requester.Subject)), false
	for range maxAttempts {
		if known.n >= int64(o.MaxPending) && fresh {
			return ErrTooManyPending
		}
		if known.n >= int64(o.MaxPending) {
			// At the cap by the last count: count afresh (some may have ended).
			resp, err := s.cli.Get(ctx, pending, clientv3.WithPrefix(), clientv3.WithCountOnly())
			if err != nil {
				return unavailable(err)
			}
			known = pendingCount{n: resp.Count, rev: resp.Header.Revision}
			s.pending.put(s.subjectKey(rec.Requester.Subject), known)
			if known.n >= int64(o.MaxPending) {
				return ErrTooManyPending
			}
		}
		resp, err := s.commit(ctx, []clientv3.Cmp{clientv3.Compare(clientv3.CreateRevision(claim), "=", 0),
			clientv3.Compare(clientv3.ModRevision(pending), "<", known.rev+1).WithPrefix()},
			ops, audit,
			[]clientv3.Op{clientv3.OpGet(claim), clientv3.OpGet(pending, clientv3.WithPrefix(), clientv3.WithCountOnly())})
		if err != nil {
			return err
		}
		if resp.Succeeded {
			s.pending.put(s.subjectKey(rec.Requester.Subject), pendingCount{n: known.n + 1, rev: resp.Header.Revision})
			return nil
		}
		known, fresh = pendingCount{n: resp.Responses[1].GetResponseRange().Count, rev: resp.Header.Revision}, true
		s.pending.put(s.subjectKey(rec.Requester.Subject), known)
		if err := claimed(resp); !errors.Is(err, errFenced) {
			return err
		}
	}
	return unavailable(errors.New("too much contention creating a request"))
}

// payloadOps store a request's body; a request without one has no payload
// key (readers take a missing one as empty).
func (s *Store) payloadOps(id string, body []byte) []clientv3.Op {
	if len(body) == 0 {
		return nil
	}
	return []clientv3.Op{clientv3.OpPut(s.payloadKey(id), string(body))}
}

// errFenced: a create's fence on the pending count failed.
var errFenced = errors.New("pending requests changed")

// claimed reads the answer of a create: nil when written, a *PendingError
// when the resource is claimed, else errFenced.
func claimed(resp *clientv3.TxnResponse) error {
	if resp.Succeeded {
		return nil
	}
	if kvs := resp.Responses[0].GetResponseRange().Kvs; len(kvs) > 0 {
		return &PendingError{ID: string(kvs[0].Value)}
	}
	return errFenced
}

func approverGroups(rec *record.Record) []string {
	out := make([]string, 0, len(rec.Approvers))
	for _, q := range rec.Approvers {
		out = append(out, q.Group)
	}
	return out
}

// CreateBypassed stores a break-glass request, already terminal: no
// resource claim and no pending entry, but indexed and audited like any
// other, in one transaction.
func (s *Store) CreateBypassed(ctx context.Context, rec *record.Record, body []byte, clientIP string) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ops := append([]clientv3.Op{clientv3.OpPut(s.requestKey(rec.ID), string(val))}, s.payloadOps(rec.ID, body)...)
	for _, k := range s.indexKeys(rec) {
		ops = append(ops, clientv3.OpPut(k, ""))
	}
	audit, err := s.auditEvents(rec, rec.History, clientIP)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.commit(ctx, nil, ops, audit, nil)
	return err
}
