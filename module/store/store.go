// Package store keeps approval requests in etcd: one key prefix, records as
// JSON, the parked body beside its record, one claim key per resource for
// the one-pending-request rule, and index keys for the list views. Every
// state change is one transaction fenced on the record's mod revision.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// DefaultPrefix is the key prefix when none is configured.
const DefaultPrefix = "/approvals/"

// Options configures a Store.
type Options struct {
	// Prefix of every key; must start and end with "/". Default
	// DefaultPrefix.
	Prefix string
	// Timeout bounds each store operation, so that an unreachable etcd
	// becomes an error quickly instead of a hung call. Default 5s.
	Timeout time.Duration
	// Observe, when set, is told of each operation: its name, duration and
	// error (metrics).
	Observe func(op string, d time.Duration, err error)
	// Logger receives what the store does on its own (elections). Default:
	// none.
	Logger *zap.Logger
	// CaseSensitiveSubjects indexes requesters by their subject exactly;
	// by default by its case folding (record.SubjectKey), so the pending cap
	// and a requester's list count "Alice" and "alice" as one.
	CaseSensitiveSubjects bool
}

// Store is the etcd-backed request store. It is safe for concurrent use.
// Several gateways on one etcd act as one: the only state it keeps is a
// hint (each requester's last known pending count), and every write is
// fenced on what is actually stored.
type Store struct {
	cli     *clientv3.Client
	prefix  string
	timeout time.Duration
	observe func(op string, d time.Duration, err error)
	pending pendingCounts
	exact   bool // subjects are case-sensitive
	log     *zap.Logger
	roles   sync.Map        // role name → *atomic.Bool: whether this gateway holds it
	windows [3]atomic.Int64 // the time window (ns) of the last list read of each view: all, a requester's, groups
}

// New returns a Store using cli, which the caller keeps and closes.
func New(cli *clientv3.Client, opts Options) (*Store, error) {
	p := opts.Prefix
	if p == "" {
		p = DefaultPrefix
	}
	if err := ValidatePrefix(p); err != nil {
		return nil, err
	}
	t := opts.Timeout
	if t <= 0 {
		t = 5 * time.Second
	}
	observe := opts.Observe
	if observe == nil {
		observe = func(string, time.Duration, error) {}
	}
	log := opts.Logger
	if log == nil {
		log = zap.NewNop()
	}
	return &Store{cli: cli, prefix: p, timeout: t, observe: observe, exact: opts.CaseSensitiveSubjects, log: log}, nil
}

// ValidatePrefix checks a key prefix: it starts and ends with "/" and has no
// empty, "." or ".." segment.
func ValidatePrefix(p string) error {
	if len(p) < 2 || !strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") {
		return fmt.Errorf("prefix %q must start and end with /", p)
	}
	for _, seg := range strings.Split(strings.Trim(p, "/"), "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("prefix %q has an empty, . or .. segment", p)
		}
	}
	return nil
}

// Errors of the store. Anything else from a Store is an *UnavailableError.
var (
	ErrNotFound = errors.New("no such request")
)

// PendingError says the resource already has a pending request.
type PendingError struct{ ID string }

func (e *PendingError) Error() string {
	return "a request for this resource is already pending: " + e.ID
}

// UnavailableError wraps a failure to reach or use etcd.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "store unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

func unavailable(err error) error {
	if err == nil {
		return nil
	}
	return &UnavailableError{Err: err}
}

// conflictError carries the current record after a lost compare-and-swap.
type conflictError struct {
	rec *record.Record
	rev int64
}

func (e *conflictError) Error() string { return "request changed concurrently" }

func (s *Store) requestKey(id string) string { return s.prefix + "requests/" + id }
func (s *Store) payloadKey(id string) string { return s.prefix + "payloads/" + id }
func (s *Store) resourceKey(r string) string { return s.prefix + "resources/" + url.PathEscape(r) }
func (s *Store) requesterIndex(sub string) string {
	return s.prefix + "by-requester/" + url.PathEscape(s.subjectKey(sub)) + "/"
}

// subjectKey is the form of a subject in keys and comparisons.
func (s *Store) subjectKey(sub string) string { return record.SubjectKey(sub, s.exact) }
func (s *Store) timeIndex() string            { return s.prefix + "by-time/" }

// indexKeys are the list index keys of a request: by time, by requester,
// and by each approver group. They hold the id inverted, so that ascending
// key order is newest first: etcd applies a range's limit before sorting
// only in ascending key order.
func (s *Store) indexKeys(rec *record.Record) []string {
	inv := invertID(rec.ID)
	keys := []string{s.timeIndex() + inv, s.requesterIndex(rec.Requester.Subject) + inv}
	for _, q := range rec.Approvers {
		keys = append(keys, s.groupIndex(q.Group)+inv)
	}
	return keys
}

// invertID maps each hex digit d of an id to f-d, reversing the id order.
func invertID(id string) string {
	b := []byte(id)
	for i, c := range b {
		switch {
		case '0' <= c && c <= '9':
			b[i] = "fedcba9876"[c-'0']
		case 'a' <= c && c <= 'f':
			b[i] = "543210"[c-'a']
		}
	}
	return string(b)
}

func (s *Store) groupIndex(group string) string {
	return s.prefix + "by-group/" + url.PathEscape(group) + "/"
}
func (s *Store) pendingIndex(sub string) string {
	return s.prefix + "pending/" + url.PathEscape(s.subjectKey(sub)) + "/"
}
func (s *Store) auditKey(id string) string  { return s.prefix + "audit/" + id }
func (s *Store) sealedKey(id string) string { return s.prefix + "sealed/" + id }

// Sealed returns the sealed replay credentials of a request, or nil.
func (s *Store) Sealed(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.sealedKey(id))
	if err != nil {
		return nil, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, nil
	}
	return resp.Kvs[0].Value, nil
}

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

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
		clientv3.OpPut(s.payloadKey(rec.ID), string(body)),
		clientv3.OpPut(pending+rec.ID, ""),
	}
	for _, k := range s.indexKeys(rec) {
		ops = append(ops, clientv3.OpPut(k, ""))
	}
	audit, err := s.auditOps(rec, rec.History, o.ClientIP)
	if err != nil {
		return err
	}
	ops = append(ops, audit...)
	if o.Sealed != nil {
		ops = append(ops, clientv3.OpPut(s.sealedKey(rec.ID), string(o.Sealed)))
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	if o.MaxPending <= 0 {
		resp, err := s.cli.Txn(ctx).If(clientv3.Compare(clientv3.CreateRevision(claim), "=", 0)).
			Then(ops...).Else(clientv3.OpGet(claim)).Commit()
		if err != nil {
			return unavailable(err)
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
		resp, err := s.cli.Txn(ctx).
			If(clientv3.Compare(clientv3.CreateRevision(claim), "=", 0),
				clientv3.Compare(clientv3.ModRevision(pending), "<", known.rev+1).WithPrefix()).
			Then(ops...).
			Else(clientv3.OpGet(claim), clientv3.OpGet(pending, clientv3.WithPrefix(), clientv3.WithCountOnly())).
			Commit()
		if err != nil {
			return unavailable(err)
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

// auditOps returns the puts of the audit events for history events.
func (s *Store) auditOps(rec *record.Record, events []record.Event, clientIP string) ([]clientv3.Op, error) {
	ops := make([]clientv3.Op, 0, len(events))
	for _, e := range events {
		id, err := NewID(e.At)
		if err != nil {
			return nil, err
		}
		b, err := json.Marshal(record.AuditEvent{
			ID: id, At: e.At, Actor: e.Actor, Action: e.Action, RequestID: rec.ID,
			From: e.From, To: e.To, Notes: e.Notes, ClientIP: clientIP,
			Policy: rec.Policy, Resource: rec.Resource, Requester: rec.Requester.Subject, Groups: approverGroups(rec),
		})
		if err != nil {
			return nil, err
		}
		ops = append(ops, clientv3.OpPut(s.auditKey(id), string(b)))
	}
	return ops, nil
}

// timed reports an operation to the observer; lost compare-and-swaps and
// refusals are not store errors.
func (s *Store) timed(op string, start time.Time, err *error) {
	var e error
	var ue *UnavailableError
	if errors.As(*err, &ue) {
		e = *err
	}
	s.observe(op, time.Since(start), e)
}

// CountPending counts the pending requests of all requesters.
func (s *Store) CountPending(ctx context.Context) (int64, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"pending/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, unavailable(err)
	}
	return resp.Count, nil
}

// Ping checks that the store answers.
func (s *Store) Ping(ctx context.Context) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Get(ctx, s.prefix+"health", clientv3.WithCountOnly())
	return unavailable(err)
}

// AppendAudit adds one event to the audit log on its own (a dry run, which
// changes no request).
func (s *Store) AppendAudit(ctx context.Context, e record.AuditEvent) error {
	id, err := NewID(e.At)
	if err != nil {
		return err
	}
	e.ID = id
	b, err := json.Marshal(e)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.cli.Put(ctx, s.auditKey(id), string(b))
	return unavailable(err)
}

// CreateBypassed stores a break-glass request, already terminal: no
// resource claim and no pending entry, but indexed and audited like any
// other, in one transaction.
func (s *Store) CreateBypassed(ctx context.Context, rec *record.Record, body []byte, clientIP string) error {
	val, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	ops := []clientv3.Op{
		clientv3.OpPut(s.requestKey(rec.ID), string(val)),
		clientv3.OpPut(s.payloadKey(rec.ID), string(body)),
	}
	for _, k := range s.indexKeys(rec) {
		ops = append(ops, clientv3.OpPut(k, ""))
	}
	audit, err := s.auditOps(rec, rec.History, clientIP)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.cli.Txn(ctx).Then(append(ops, audit...)...).Commit()
	return unavailable(err)
}

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

// NewID returns a time-ordered id (a UUIDv7) whose timestamp is t, so that
// key order is time order by the gateway's clock and time ranges map to key
// ranges. Within one process, ids made in the same millisecond strictly
// increase, as the 12 bits below the millisecond count on.
func NewID(t time.Time) (string, error) {
	u, err := uuid.NewV7() // for its random bits
	if err != nil {
		return "", err
	}
	idMu.Lock()
	now := t.UnixMilli()<<12 | int64(t.Nanosecond()%1e6)>>8
	if now <= lastID && lastID-now < 1<<12 {
		// Same millisecond: count on. (A clock set back further is
		// followed, so that ids keep telling time.)
		now = lastID + 1
	}
	lastID = now
	idMu.Unlock()
	ms, seq := uint64(now>>12), uint64(now&0xfff)
	for i := range 6 {
		u[i] = byte(ms >> (40 - 8*i))
	}
	u[6] = 0x70 | byte(seq>>8)
	u[7] = byte(seq)
	return u.String(), nil
}

var (
	idMu   sync.Mutex
	lastID int64 // the last id's milliseconds<<12 | sub-millisecond sequence
)

// ValidID reports whether id has the form of a request id (a UUID), so that
// user input never reaches a key unchecked.
func ValidID(id string) bool {
	if len(id) != 36 {
		return false
	}
	for i, c := range id {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
				return false
			}
		}
	}
	return true
}
