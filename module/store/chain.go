package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approval-gateway/gateway/module/auditchain"
	"github.com/approval-gateway/gateway/module/record"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// The audit chain: every transaction that appends audit events links them
// into one sequence, in the same transaction: each event gets the next
// seq, the hash of the event before it and its own hash, and the chain's
// head key moves to the last. The transaction is fenced on the head's mod
// revision, so two writers (on one gateway or several) cannot give two
// events one seq; this gateway's writers take turns, and one that lost to
// another gateway retries with the head it got back.

// chainHead is the last event of the chain, as stored under the head key,
// with that key's mod revision.
type chainHead struct {
	auditchain.Link
	rev int64
}

// chain is this gateway's knowledge of the head: what its own writes
// left, and what the audit feed saw others write (seen), so that a write
// after another gateway's is not fenced out for a stale head.
type chain struct {
	mu      sync.Mutex
	queue   []*chainWrite // writes waiting for the committer
	running bool          // a committer runs
	// head and known belong to the committer (one runs at a time).
	head  chainHead
	known bool
	seen  atomic.Pointer[chainHead]
}

// learnHead takes the latest chained event of watched audit events as the
// head (the head key is written in the event's transaction, so at its
// revision).
func (s *Store) learnHead(evs []*clientv3.Event) {
	var last *chainHead
	for _, ev := range evs {
		if ev.Type != clientv3.EventTypePut {
			continue
		}
		var l auditchain.Link
		if json.Unmarshal(ev.Kv.Value, &l) != nil || l.Seq == 0 || (last != nil && l.Seq <= last.Seq) {
			continue
		}
		last = &chainHead{Link: l, rev: ev.Kv.ModRevision}
	}
	for last != nil {
		cur := s.chain.seen.Load()
		if cur != nil && cur.rev >= last.rev || s.chain.seen.CompareAndSwap(cur, last) {
			return
		}
	}
}

func (s *Store) chainHeadKey() string { return s.prefix + "audit-chain/head" }

// ChainHead reads the chain's head (seq 0 when the log is empty).
func (s *Store) ChainHead(ctx context.Context) (auditchain.Link, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.chainHeadKey())
	if err != nil {
		return auditchain.Link{}, unavailable(err)
	}
	h, err := parseHead(resp.Kvs)
	return h.Link, err
}

// parseHead reads the head key's value (absent: the empty chain).
func parseHead(kvs []*mvccpb.KeyValue) (chainHead, error) {
	if len(kvs) == 0 {
		return chainHead{Link: auditchain.Link{Hash: auditchain.Genesis}}, nil
	}
	var h chainHead
	if err := json.Unmarshal(kvs[0].Value, &h.Link); err != nil {
		return h, errors.New("the audit chain's head does not parse: " + err.Error())
	}
	h.rev = kvs[0].ModRevision
	return h, nil
}

// linked returns the puts of events, linked after head, and the new head.
func (s *Store) linked(events []record.AuditEvent, head chainHead) ([]clientv3.Op, auditchain.Link, error) {
	ops := make([]clientv3.Op, 0, len(events)+1)
	last := head.Link
	for _, e := range events {
		e.Seq, e.PrevHash, e.Hash = last.Seq+1, last.Hash, ""
		b, err := json.Marshal(e)
		if err != nil {
			return nil, last, err
		}
		if e.Hash, err = auditchain.Hash(b); err != nil {
			return nil, last, err
		}
		if b, err = json.Marshal(e); err != nil {
			return nil, last, err
		}
		ops = append(ops, clientv3.OpPut(s.auditKey(e.ID), string(b)))
		last = auditchain.Link{Seq: e.Seq, PrevHash: e.PrevHash, Hash: e.Hash}
	}
	b, err := json.Marshal(last)
	if err != nil {
		return nil, last, err
	}
	return append(ops, clientv3.OpPut(s.chainHeadKey(), string(b))), last, nil
}

// maxChainAttempts bounds the tries of a write that other gateways keep
// fencing out on the chain's head (the store's timeout bounds them too).
const maxChainAttempts = 100

// maxBatchOps bounds the operations of one batch transaction, under
// etcd's default limit of 128 per transaction; maxBatchBytes its size,
// under etcd's default request limit of 1.5 MiB (a write larger than it,
// a park with a body near max_body, goes alone).
const (
	maxBatchOps   = 120
	maxBatchBytes = 1 << 20
)

// chainWrite is a transaction waiting to be committed with the chain.
type chainWrite struct {
	ctx    context.Context
	cmps   []clientv3.Cmp
	then   []clientv3.Op
	events []record.AuditEvent
	els    []clientv3.Op
	spans  []span // the keys it reads or writes
	size   int    // its keys and values, in bytes
	resp   *clientv3.TxnResponse
	err    error
	done   chan struct{}
}

func (w *chainWrite) finish(resp *clientv3.TxnResponse, err error) {
	w.resp, w.err = resp, err
	close(w.done)
}

// commit commits the transaction If(cmps) Then(then) Else(els), with the
// audit events appended to the chain when it succeeds. Its answer holds
// the responses of then or of els only. When the caller's own conditions
// fail it is the caller's to handle; when only the head moved, it is tried
// again with the new head.
//
// Writes with events are committed by one goroutine per store, in batches:
// the writes waiting meanwhile that touch no key in common go in one
// transaction (their conditions and the head's, their operations, their
// events linked in turn), so that the chain's order costs one round trip
// for many writes, not one each. When a condition of the batch fails, it
// is split in halves, down to the write that fails, which gets its own
// answer.
func (s *Store) commit(ctx context.Context, cmps []clientv3.Cmp, then []clientv3.Op, events []record.AuditEvent, els []clientv3.Op) (*clientv3.TxnResponse, error) {
	if len(events) == 0 {
		resp, err := s.cli.Txn(ctx).If(cmps...).Then(then...).Else(els...).Commit()
		return resp, unavailable(err)
	}
	w := &chainWrite{ctx: ctx, cmps: cmps, then: then, events: events, els: els, done: make(chan struct{})}
	w.spans = spansOf(cmps, then, els)
	w.size = sizeOf(then) + 2048*len(events) // an event, linked: under 2 KB
	s.chain.mu.Lock()
	s.chain.queue = append(s.chain.queue, w)
	if !s.chain.running {
		s.chain.running = true
		go s.committer()
	}
	s.chain.mu.Unlock()
	<-w.done
	return w.resp, w.err
}

// committer commits the waiting writes, batch by batch, until none waits.
func (s *Store) committer() {
	for {
		s.chain.mu.Lock()
		if len(s.chain.queue) == 0 {
			s.chain.running = false
			s.chain.mu.Unlock()
			return
		}
		batch, rest := pickBatch(s.chain.queue)
		s.chain.queue = rest
		s.chain.mu.Unlock()
		s.commitBatch(batch)
	}
}

// pickBatch takes from the queue, in order, the writes that share no key
// with those taken before them and fit in one transaction (the first
// always); the others wait for the next batch, in order.
func pickBatch(queue []*chainWrite) (batch, rest []*chainWrite) {
	ops, cmps, size := 1, 1, 0 // the head's put and compare
	for _, w := range queue {
		n := len(w.then) + len(w.events)
		fits := len(batch) == 0 || (ops+n <= maxBatchOps && cmps+len(w.cmps) <= maxBatchOps && size+w.size <= maxBatchBytes)
		for _, b := range batch {
			if overlaps(w.spans, b.spans) {
				fits = false
				break
			}
		}
		if !fits {
			rest = append(rest, w)
			continue
		}
		batch, ops, cmps, size = append(batch, w), ops+n, cmps+len(w.cmps), size+w.size
	}
	return batch, rest
}

// commitBatch commits writes in one transaction, linking their events in
// their order; see commit.
func (s *Store) commitBatch(batch []*chainWrite) {
	live := batch[:0]
	for _, w := range batch {
		if err := w.ctx.Err(); err != nil {
			w.finish(nil, unavailable(err)) // its caller gave up before it was sent
			continue
		}
		live = append(live, w)
	}
	if len(live) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	failAll := func(err error) {
		for _, w := range live {
			w.finish(nil, err)
		}
	}
	var cmps []clientv3.Cmp
	var then, els []clientv3.Op
	var events []record.AuditEvent
	for _, w := range live {
		cmps = append(cmps, w.cmps...)
		then = append(then, w.then...)
		events = append(events, w.events...)
	}
	if len(live) == 1 {
		els = live[0].els
	}
	key := s.chainHeadKey()
	for attempt := range maxChainAttempts {
		if attempt > 1 {
			// Another gateway keeps winning: step aside a moment, at
			// random, so that one of us gets through.
			time.Sleep(time.Duration(rand.Int64N(int64(attempt) * int64(time.Millisecond))))
		}
		if h := s.chain.seen.Load(); h != nil && h.rev > s.chain.head.rev {
			s.chain.head, s.chain.known = *h, true
		}
		if !s.chain.known {
			resp, err := s.cli.Get(ctx, key)
			if err != nil {
				failAll(unavailable(err))
				return
			}
			if s.chain.head, err = parseHead(resp.Kvs); err != nil {
				failAll(err)
				return
			}
			s.chain.known = true
		}
		ops, next, err := s.linked(events, s.chain.head)
		if err != nil {
			failAll(err)
			return
		}
		resp, err := s.cli.Txn(ctx).
			If(append(cmps[:len(cmps):len(cmps)], clientv3.Compare(clientv3.ModRevision(key), "=", s.chain.head.rev))...).
			Then(append(then[:len(then):len(then)], ops...)...).
			Else(append(els[:len(els):len(els)], clientv3.OpGet(key))...).
			Commit()
		if err != nil {
			s.chain.known = false // the outcome is unknown: read the head again
			failAll(unavailable(err))
			return
		}
		if resp.Succeeded {
			s.chain.head = chainHead{Link: next, rev: resp.Header.Revision}
			at := 0
			for _, w := range live {
				w.finish(&clientv3.TxnResponse{Header: resp.Header, Succeeded: true, Responses: resp.Responses[at : at+len(w.then)]}, nil)
				at += len(w.then)
			}
			return
		}
		cur, err := parseHead(resp.Responses[len(els)].GetResponseRange().Kvs)
		if err != nil {
			failAll(err)
			return
		}
		moved := cur.rev != s.chain.head.rev
		s.chain.head = cur
		if moved {
			continue
		}
		if len(live) == 1 {
			live[0].finish(&clientv3.TxnResponse{Header: resp.Header, Responses: resp.Responses[:len(els)]}, nil)
			return
		}
		// A write's own condition failed: halves, down to the write that
		// fails on its own and gets its answer.
		half := len(live) / 2
		s.commitBatch(slices.Clone(live[:half]))
		s.commitBatch(slices.Clone(live[half:]))
		return
	}
	failAll(unavailable(errors.New("too much contention on the audit chain")))
}

// span is a key range [from, to) a transaction reads or writes; to ""
// means to the end of the key space.
type span struct{ from, to string }

// spansOf lists the keys a transaction's conditions and operations
// touch, nested transactions included.
func spansOf(cmps []clientv3.Cmp, ops ...[]clientv3.Op) []span {
	var out []span
	add := func(key, end []byte) {
		switch {
		case len(end) == 0:
			out = append(out, span{string(key), string(key) + "\x00"})
		case string(end) == "\x00":
			out = append(out, span{string(key), ""})
		default:
			out = append(out, span{string(key), string(end)})
		}
	}
	for _, c := range cmps {
		add(c.KeyBytes(), c.GetCompare().RangeEnd)
	}
	for _, list := range ops {
		for _, op := range list {
			if op.IsTxn() {
				c, t, e := op.Txn()
				out = append(out, spansOf(c, t, e)...)
				continue
			}
			add(op.KeyBytes(), op.RangeBytes())
		}
	}
	return out
}

// sizeOf is the bytes of the keys and values of ops.
func sizeOf(ops []clientv3.Op) int {
	n := 0
	for _, op := range ops {
		if op.IsTxn() {
			_, t, e := op.Txn()
			n += sizeOf(t) + sizeOf(e)
			continue
		}
		n += len(op.KeyBytes()) + len(op.RangeBytes()) + len(op.ValueBytes())
	}
	return n
}

// overlaps reports whether two lists of spans share a key.
func overlaps(a, b []span) bool {
	for _, x := range a {
		for _, y := range b {
			if (y.to == "" || x.from < y.to) && (x.to == "" || y.from < x.to) {
				return true
			}
		}
	}
	return false
}

// auditEvents are the audit events of a request's history events.
func (s *Store) auditEvents(rec *record.Record, events []record.Event, clientIP string) ([]record.AuditEvent, error) {
	out := make([]record.AuditEvent, 0, len(events))
	for _, e := range events {
		id, err := NewID(e.At)
		if err != nil {
			return nil, err
		}
		out = append(out, record.AuditEvent{
			ID: id, At: e.At, Actor: e.Actor, Action: e.Action, RequestID: rec.ID,
			From: e.From, To: e.To, Notes: e.Notes, ClientIP: clientIP,
			Policy: rec.Policy, Resource: rec.Resource, Requester: rec.Requester.Subject, Groups: approverGroups(rec),
		})
	}
	return out, nil
}

func (s *Store) checkpointKey(seq int64) string {
	return fmt.Sprintf("%saudit-chain/checkpoints/%020d", s.prefix, seq)
}

// EachAuditEvent calls fn with every audit event as stored, with the id
// its key names, in key (time) order, until fn returns false.
func (s *Store) EachAuditEvent(ctx context.Context, fn func(id string, raw []byte) bool) error {
	return s.EachAuditEventAt(ctx, 0, fn)
}

// EachAuditEventAt is EachAuditEvent as the store was at revision rev (0:
// now, page by page), so that writes made meanwhile are not half seen.
func (s *Store) EachAuditEventAt(ctx context.Context, rev int64, fn func(id string, raw []byte) bool) error {
	prefix := s.prefix + "audit/"
	from, end := prefix, clientv3.GetPrefixRangeEnd(prefix)
	for {
		cctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Get(cctx, from, clientv3.WithRange(end), clientv3.WithLimit(500), clientv3.WithRev(rev))
		cancel()
		if err != nil {
			return unavailable(err)
		}
		for _, kv := range resp.Kvs {
			if !fn(string(kv.Key[len(prefix):]), kv.Value) {
				return nil
			}
		}
		if !resp.More || len(resp.Kvs) == 0 {
			return nil
		}
		from = string(resp.Kvs[len(resp.Kvs)-1].Key) + "\x00"
	}
}

// AuditSnapshot is the chain's head and its signed checkpoints (oldest
// first) read at one revision, Rev, for a verification or an export to
// read the events at.
type AuditSnapshot struct {
	Head        auditchain.Link
	Checkpoints []string
	Rev         int64
}

// Snapshot reads the chain's head and checkpoints at one revision.
func (s *Store) Snapshot(ctx context.Context) (AuditSnapshot, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).Then(clientv3.OpGet(s.chainHeadKey()),
		clientv3.OpGet(s.prefix+"audit-chain/checkpoints/", clientv3.WithPrefix())).Commit()
	if err != nil {
		return AuditSnapshot{}, unavailable(err)
	}
	head, err := parseHead(resp.Responses[0].GetResponseRange().Kvs)
	if err != nil {
		return AuditSnapshot{}, err
	}
	snap := AuditSnapshot{Head: head.Link, Rev: resp.Header.Revision}
	for _, kv := range resp.Responses[1].GetResponseRange().Kvs {
		snap.Checkpoints = append(snap.Checkpoints, string(kv.Value))
	}
	return snap, nil
}

// PutCheckpoint stores a signed checkpoint of the chain at seq.
func (s *Store) PutCheckpoint(ctx context.Context, seq int64, token string) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Put(ctx, s.checkpointKey(seq), token)
	return unavailable(err)
}

// LatestCheckpointSeq is the seq of the newest signed checkpoint (0: none).
func (s *Store) LatestCheckpointSeq(ctx context.Context) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	prefix := s.prefix + "audit-chain/checkpoints/"
	resp, err := s.cli.Get(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(1))
	if err != nil || len(resp.Kvs) == 0 {
		return 0, unavailable(err)
	}
	var seq int64
	_, err = fmt.Sscanf(string(resp.Kvs[0].Key[len(prefix):]), "%d", &seq)
	return seq, err
}
