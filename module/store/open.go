package store

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Open requests: one watch per gateway on the requests keeps a compact copy
// of every open request (needs_approval, approved, completing). It serves
// the console's live pages and "waiting for you" count, the sweeper's
// search for what is due, and claims without a read, so that etcd sees one
// watch from a gateway however many pages are open, and none of these
// reads grows with the store.

// OpenRequests is this gateway's view of the open requests. It lags the
// store by the watch's delay: every write made from it is still fenced on
// the stored mod revision, so a stale view costs a retry, never a wrong
// write.
type OpenRequests struct {
	s       *Store
	ready   atomic.Bool
	running atomic.Bool
	applied atomic.Int64 // the store revision the view reflects

	mu   sync.RWMutex
	recs map[string]*openEntry // by id (the entry's own)
	// approved holds the stored approved requests by id, so that the
	// requester's claim needs no read.
	approved map[string][]byte
	subs     map[chan *record.Record]struct{}

	namesMu sync.Mutex
	names   map[string]string   // subjects and groups, shared between entries
	sets    map[string][]string // group lists, shared between entries
}

// openEntry is one open request: what the view keeps of it and its mod
// revision.
type openEntry struct {
	OpenRequest
	rev int64
}

// OpenRequest is what the view keeps of an open request: enough for who
// may approve it and for when something is due, in a few words of memory
// (subjects as compared, names shared between requests).
type OpenRequest struct {
	ID string
	// Requester and ApprovedBy are subject keys (subject.Key): the view
	// answers who may approve, a question of refusals.
	Requester string
	// Groups are the required groups, shared by the requests that require
	// the same ones.
	Groups     []string
	ApprovedBy []string
	// expires and claimed are Unix times in nanoseconds (claimed: zero
	// unless completing).
	expires, claimed int64
	Status           record.Status
	// reminded: the expiry reminder was raised in the current status.
	reminded bool
}

// ExpiresAt is when the request expires.
func (r *OpenRequest) ExpiresAt() time.Time { return time.Unix(0, r.expires) }

// Approvable reports whether the subject (key me, groups) may approve the
// request now, as record.Record.Can(ActionApprove) would answer.
func (r *OpenRequest) Approvable(me string, groups []string) bool {
	if r.Status != record.NeedsApproval || r.Requester == me || slices.Contains(r.ApprovedBy, me) {
		return false
	}
	for _, g := range r.Groups {
		if slices.Contains(groups, g) {
			return true
		}
	}
	return false
}

// Record is a record with what the view keeps, for the lifecycle's rules
// (Due, reminders).
func (r *OpenRequest) Record() *record.Record {
	rec := &record.Record{ID: r.ID, Status: r.Status, Requester: record.Principal{Subject: r.Requester}, ExpiresAt: r.ExpiresAt()}
	if r.claimed != 0 {
		t := time.Unix(0, r.claimed)
		rec.ClaimedAt = &t
	}
	if r.reminded {
		rec.History = []record.Event{{Action: "reminder", Actor: record.SystemActor, From: r.Status, To: r.Status}}
	}
	return rec
}

func newOpenRequests(s *Store) *OpenRequests {
	return &OpenRequests{s: s, recs: map[string]*openEntry{}, approved: map[string][]byte{},
		subs: map[chan *record.Record]struct{}{}, names: map[string]string{}, sets: map[string][]string{}}
}

// Open returns the store's view of the open requests; Run keeps it.
func (s *Store) Open() *OpenRequests { return s.open }

// Ready reports whether the view has been read from the store and is
// followed.
func (o *OpenRequests) Ready() bool { return o.ready.Load() }

// Run reads the open requests and follows their changes with one watch,
// until ctx ends. When the watch breaks (store down, compaction) changes
// may have been missed: the view is read again.
func (o *OpenRequests) Run(ctx context.Context) {
	if !o.running.CompareAndSwap(false, true) {
		return // one watch per store: it is followed already
	}
	defer o.running.Store(false)
	for ctx.Err() == nil {
		rev, err := o.prime(ctx)
		if err != nil {
			o.ready.Store(false)
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			continue
		}
		o.applied.Store(rev)
		o.ready.Store(true)
		fctx, cancel := context.WithCancel(ctx)
		o.s.follow(fctx, o.s.prefix+"requests/", rev, o.apply, func() {
			o.ready.Store(false)
			cancel() // read the view again before following
		})
		cancel()
	}
	o.ready.Store(false)
}

// prime reads every open request at one revision, which it returns.
func (o *OpenRequests) prime(ctx context.Context) (int64, error) {
	o.namesMu.Lock()
	o.names, o.sets = map[string]string{}, map[string][]string{}
	o.namesMu.Unlock()
	recs, approved := map[string]*openEntry{}, map[string][]byte{}
	rev, err := o.s.scanPending(ctx, func(kv *mvccpb.KeyValue) error {
		if e, _ := o.newOpenEntry(kv.Value, kv.ModRevision); e != nil {
			recs[e.ID] = e
			if e.Status == record.Approved {
				approved[e.ID] = kv.Value
			}
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	o.mu.Lock()
	o.recs, o.approved = recs, approved
	o.mu.Unlock()
	return rev, nil
}

// newOpenEntry is the entry of a stored record (nil when it is not open)
// and the record's compact copy for subscribers (nil when it is not a
// record).
func (o *OpenRequests) newOpenEntry(raw []byte, rev int64) (*openEntry, *record.Record) {
	rec, err := decodeCompact(raw)
	if err != nil {
		return nil, nil
	}
	if rec.Status.Terminal() {
		return nil, rec
	}
	e := &openEntry{rev: rev, OpenRequest: OpenRequest{ID: rec.ID, Status: status(rec.Status),
		Requester: o.intern(o.s.subjectKey(rec.Requester.Subject)), expires: rec.ExpiresAt.UnixNano()}}
	var groups []string
	for _, q := range rec.Approvers {
		if !slices.Contains(groups, q.Group) {
			groups = append(groups, q.Group)
		}
		for _, a := range q.Approvals {
			e.ApprovedBy = append(e.ApprovedBy, o.intern(o.s.subjectKey(a.Subject)))
		}
	}
	e.Groups = o.internSet(groups)
	if rec.ClaimedAt != nil {
		e.claimed = rec.ClaimedAt.UnixNano()
	}
	for _, h := range rec.History {
		if h.Action == "reminder" && h.From == rec.Status {
			e.reminded = true
		}
	}
	return e, rec
}

// status is s as one of the lifecycle's constants, so that no entry keeps
// a string of its own for it.
func status(s record.Status) record.Status {
	for _, c := range record.Statuses {
		if c == s {
			return c
		}
	}
	return s
}

// maxNames bounds the names kept for sharing; past it sharing starts over
// (entries keep the names they hold).
const maxNames = 1 << 16

// intern returns s, shared with every entry that holds the same name.
// Names are dropped with the view when it is read again, or when there
// are more than maxNames.
func (o *OpenRequests) intern(s string) string {
	o.namesMu.Lock()
	defer o.namesMu.Unlock()
	if v, ok := o.names[s]; ok {
		return v
	}
	if len(o.names) >= maxNames {
		o.names = map[string]string{}
	}
	o.names[s] = s
	return s
}

// internSet returns the group list gs (which it keeps), shared with every
// entry that requires the same groups in the same order; bounded as
// intern's names are.
func (o *OpenRequests) internSet(gs []string) []string {
	if len(gs) == 0 {
		return nil
	}
	key := strings.Join(gs, "\x00")
	o.namesMu.Lock()
	defer o.namesMu.Unlock()
	if v, ok := o.sets[key]; ok {
		return v
	}
	if len(o.sets) >= maxNames {
		o.sets = map[string][]string{}
	}
	for i, g := range gs {
		if v, ok := o.names[g]; ok {
			gs[i] = v
		}
	}
	gs = slices.Clip(gs)
	o.sets[key] = gs
	return gs
}

// openFields are the fields of a stored record the view reads: decoding
// only them skips the operation, the result and the notes.
type openFields struct {
	ID        string               `json:"id"`
	Status    record.Status        `json:"status"`
	Requester record.Principal     `json:"requester"`
	Policy    string               `json:"policy"`
	Resource  string               `json:"resource"`
	Approvers []record.Requirement `json:"approvers"`
	UpdatedAt time.Time            `json:"updated_at"`
	ExpiresAt time.Time            `json:"expires_at"`
	ClaimedAt *time.Time           `json:"claimed_at,omitempty"`
	History   []struct {
		Action string        `json:"action"`
		At     time.Time     `json:"at"`
		From   record.Status `json:"from,omitempty"`
		To     record.Status `json:"to"`
	} `json:"history"`
}

// decodeCompact reads of a stored record what parties, quorum and due
// times need (history: reminders only).
func decodeCompact(raw []byte) (*record.Record, error) {
	var f openFields
	if err := json.Unmarshal(raw, &f); err != nil {
		return nil, err
	}
	c := &record.Record{ID: f.ID, Status: f.Status, Requester: f.Requester, Policy: f.Policy, Resource: f.Resource,
		Approvers: f.Approvers, ExpiresAt: f.ExpiresAt, ClaimedAt: f.ClaimedAt, UpdatedAt: f.UpdatedAt}
	for _, e := range f.History {
		if e.Action == "reminder" {
			c.History = append(c.History, record.Event{Action: e.Action, At: e.At, From: e.From, To: e.To, Actor: record.SystemActor})
		}
	}
	return c, nil
}

// apply takes a batch of watched changes into the view and passes each
// changed record to the subscribers.
func (o *OpenRequests) apply(rev int64, evs []*clientv3.Event) {
	defer o.applied.Store(rev)
	var changed []*record.Record
	o.mu.Lock()
	for _, ev := range evs {
		id := ev.Kv.Key[len(o.s.prefix)+len("requests/"):]
		if ev.Type == clientv3.EventTypeDelete {
			delete(o.recs, string(id))
			delete(o.approved, string(id))
			continue
		}
		e, rec := o.newOpenEntry(ev.Kv.Value, ev.Kv.ModRevision)
		if rec == nil {
			continue
		}
		changed = append(changed, rec)
		if old, ok := o.recs[string(id)]; ok && old.rev >= ev.Kv.ModRevision {
			continue
		}
		delete(o.approved, string(id))
		if e == nil {
			delete(o.recs, string(id))
			continue
		}
		o.recs[e.ID] = e
		if e.Status == record.Approved {
			o.approved[e.ID] = ev.Kv.Value
		}
	}
	subs := make([]chan *record.Record, 0, len(o.subs))
	for ch := range o.subs {
		subs = append(subs, ch)
	}
	o.mu.Unlock()
	for _, rec := range changed {
		for _, ch := range subs {
			select {
			case ch <- rec:
			default: // a slow reader misses it; its page reloads anyway
			}
		}
	}
}

// CaughtUp reports whether the view reflects every write made before the
// call, waiting up to wait for its watch to catch up: a reader that must
// not miss a write just made (the sweeper) asks it first.
func (o *OpenRequests) CaughtUp(ctx context.Context, wait time.Duration) bool {
	if !o.ready.Load() {
		return false
	}
	rev, err := o.s.Revision(ctx)
	if err != nil {
		return false
	}
	deadline := time.Now().Add(wait)
	for o.applied.Load() < rev {
		if !o.ready.Load() || time.Now().After(deadline) || ctx.Err() != nil {
			return false
		}
		// The watch tells its revision when asked, events or not: asked
		// on its own stream, which its require-leader metadata names.
		_ = o.s.cli.RequestProgress(clientv3.WithRequireLeader(ctx))
		select {
		case <-ctx.Done():
			return false
		case <-time.After(5 * time.Millisecond):
		}
	}
	return true
}

// Subscribe returns a channel that receives every request changed from now
// on, as a compact copy (as Each gives; its buffer is buf; a reader that
// falls behind misses changes), and the function that ends the
// subscription.
func (o *OpenRequests) Subscribe(buf int) (<-chan *record.Record, func()) {
	ch := make(chan *record.Record, buf)
	o.mu.Lock()
	o.subs[ch] = struct{}{}
	o.mu.Unlock()
	return ch, func() {
		o.mu.Lock()
		delete(o.subs, ch)
		o.mu.Unlock()
	}
}

// Each calls fn with every open request (which fn must not change) until
// fn returns false.
func (o *OpenRequests) Each(fn func(*OpenRequest) bool) {
	o.mu.RLock()
	defer o.mu.RUnlock()
	for _, e := range o.recs {
		if !fn(&e.OpenRequest) {
			return
		}
	}
}

// Waiting counts the requests the subject (as in record.Principal) may
// approve now.
func (o *OpenRequests) Waiting(subject string, groups []string) int {
	me, n := o.s.subjectKey(subject), 0
	o.Each(func(r *OpenRequest) bool {
		if r.Approvable(me, groups) {
			n++
		}
		return true
	})
	return n
}

// stored returns the stored record id and its mod revision when the view
// holds it (approved requests), so that a claim can be written without a
// read.
func (o *OpenRequests) stored(id string) ([]byte, int64, bool) {
	if !o.ready.Load() {
		return nil, 0, false
	}
	o.mu.RLock()
	defer o.mu.RUnlock()
	raw, ok := o.approved[id]
	if !ok {
		return nil, 0, false
	}
	return raw, o.recs[id].rev, true
}
