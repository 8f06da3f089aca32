// Package store keeps approval requests in etcd: one key prefix, records as
// JSON, the parked body beside its record, one claim key per resource for
// the one-pending-request rule, and index keys for the list views. Every
// state change is one transaction fenced on the record's mod revision.
package store

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approval-gateway/gateway/module/identity/subject"
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
	// CaseSensitiveSubjects keeps case apart in the subject keys that
	// requesters are indexed and counted by (subject.Key): by default the
	// pending cap counts "Alice" and "alice" as one.
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
	open    *OpenRequests   // this gateway's view of the open requests (Open)
	audit   *AuditFeed      // this gateway's watch of the audit log (Feed)
	chain   chain           // the audit chain's head, as this gateway knows it
	members members         // the group members this gateway saw (SeenMember)
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
	s := &Store{cli: cli, prefix: p, timeout: t, observe: observe, exact: opts.CaseSensitiveSubjects, log: log}
	s.open, s.audit = newOpenRequests(s), newAuditFeed(s)
	return s, nil
}

// Prefix is the store's key prefix: every key it reads or writes is under
// it.
func (s *Store) Prefix() string { return s.prefix }

// SitePrefix is the key prefix of site on a store whose prefix is prefix
// ("" for DefaultPrefix): the prefix itself for the default site (""), so
// that a single gateway's keys stay where they always were, and
// prefix + "sites/" + site + "/" for any other. No key of the default
// site starts with "sites/", so the key spaces never overlap.
func SitePrefix(prefix, site string) string {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	if site == "" {
		return prefix
	}
	return prefix + "sites/" + site + "/"
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
func (s *Store) subjectKey(sub string) string { return subject.Key(sub, s.exact) }
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

func (s *Store) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.timeout)
}

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
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.commit(ctx, nil, nil, []record.AuditEvent{e}, nil)
	return err
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
