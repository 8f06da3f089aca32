package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/identity/subject"
	"github.com/approval-gateway/gateway/module/record"
	"go.etcd.io/etcd/api/v3/etcdserverpb"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Limits of a list page.
const (
	DefaultLimit = 50
	MaxLimit     = 500
)

// ListOptions selects a page of requests, newest first.
type ListOptions struct {
	// Requester, when set, lists that subject's requests (view=mine).
	Requester string
	// Groups, when set, lists requests that need approval from any of them
	// (view=received). Requester and Groups are exclusive; with neither,
	// every request is listed (view=all).
	Groups []string

	// Filters: a request is listed when it matches all that are set.
	Statuses      []record.Status
	Policy        string
	RequestedBy   string
	Resource      string
	CreatedAfter  time.Time // inclusive
	CreatedBefore time.Time // exclusive

	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
	// Cursor continues after the request with this id.
	Cursor string
}

// match reports whether r is listed. The requester's own view is a grant:
// its index is keyed by subject.Key, so it holds every spelling of the
// subject, and only the subject exactly as issued is listed. The requester
// filter of the other views is a search, and folds.
func (o *ListOptions) match(r *record.Record, exact bool) bool {
	return (o.Requester == "" || r.Requester.Subject == o.Requester) &&
		(len(o.Statuses) == 0 || slices.Contains(o.Statuses, r.Status)) &&
		(o.Policy == "" || r.Policy == o.Policy) &&
		(o.RequestedBy == "" || subject.Key(r.Requester.Subject, exact) == subject.Key(o.RequestedBy, exact)) &&
		(o.Resource == "" || r.Resource == o.Resource)
}

func (o *ListOptions) filtered() bool {
	return o.Requester != "" || len(o.Statuses) > 0 || o.Policy != "" || o.RequestedBy != "" || o.Resource != ""
}

// ErrBadCursor is returned for a cursor that is not an id.
var ErrBadCursor = errors.New("cursor is not an id")

// IDFloor is the smallest time-ordered (UUIDv7) id of time t: every id made
// at t or later sorts at or above it, every earlier one below.
func IDFloor(t time.Time) string {
	ms := uint64(t.UnixMilli())
	return fmt.Sprintf("%08x-%04x", ms>>16, ms&0xffff)
}

// bounds turns a cursor and a time range into the id range [lower, upper)
// to read; "" means unbounded.
func bounds(cursor string, after, before time.Time) (lower, upper string, err error) {
	if cursor != "" && !ValidID(cursor) {
		return "", "", ErrBadCursor
	}
	upper = cursor
	if !before.IsZero() {
		if b := IDFloor(before); upper == "" || b < upper {
			upper = b
		}
	}
	if !after.IsZero() {
		lower = IDFloor(after)
	}
	return lower, upper, nil
}

func pageSize(limit int) int {
	if limit <= 0 {
		return DefaultLimit
	}
	return min(limit, MaxLimit)
}

// List returns a page of requests and the cursor of the next page ("" on the
// last page). Reads go through the index of the view in batches, so a page
// costs the same however many requests are stored, and ids only grow, so a
// cursor stays correct while requests are added.
func (s *Store) List(ctx context.Context, o ListOptions) (_ []*record.Record, _ string, err error) {
	defer s.timed("list", time.Now(), &err)
	lower, upper, err := bounds(o.Cursor, o.CreatedAfter, o.CreatedBefore)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(o.Limit)
	prefixes := []string{s.timeIndex()}
	hint := &s.windows[0]
	switch {
	case o.Requester != "":
		prefixes = []string{s.requesterIndex(o.Requester)}
		hint = &s.windows[1]
	case len(o.Groups) > 0:
		prefixes = nil
		for _, g := range o.Groups {
			prefixes = append(prefixes, s.groupIndex(g))
		}
		hint = &s.windows[2]
	}
	batch := min(limit+1, MaxLimit)
	if o.filtered() {
		batch = MaxLimit // filters skip records: read more per round trip
	}
	var out []*record.Record
	// etcd counts every key of a range it reads, however few it returns:
	// reading the index in time windows keeps the counted range near the
	// page, whatever the number stored. A window that runs out before the
	// page is full gives way to a wider one below it.
	win := time.Duration(hint.Load())
	if win <= 0 {
		win = initialWindow
	}
	for {
		wlower := windowFloor(lower, upper, win)
		recs, last, more, counted, err := s.scan(ctx, prefixes, wlower, upper, batch)
		if err != nil {
			return nil, "", err
		}
		if counted > 4*int64(batch) {
			// Far more keys in the window than a batch: narrow the next.
			win = max(minWindow, time.Duration(float64(win)*2*float64(batch)/float64(counted)))
		}
		hint.Store(int64(win))
		for _, r := range recs {
			if !o.match(r, s.exact) {
				continue
			}
			out = append(out, r)
			if len(out) > limit {
				return out[:limit], out[limit-1].ID, nil
			}
		}
		switch {
		case more:
			upper = last
		case wlower != lower:
			upper, win = wlower, min(maxWindow, win*windowGrowth)
		default:
			return out, "", nil
		}
	}
}

// The time windows of index reads: the first is the last one that served
// a list of the same view (kept per store), and each that runs out is
// followed by one windowGrowth times wider; past maxWindow the rest is read
// in one range.
const (
	initialWindow = time.Hour
	minWindow     = time.Second
	maxWindow     = 400 * 24 * time.Hour
	windowGrowth  = 16
)

// windowFloor is the lower id bound of a read of the window of width win
// below upper (now when upper is ""): lower itself when the window reaches
// it, or when win is the widest (the rest is read at once).
func windowFloor(lower, upper string, win time.Duration) string {
	if win >= maxWindow {
		return lower
	}
	top := time.Now()
	if upper != "" {
		t, ok := idTime(upper)
		if !ok {
			return lower
		}
		top = t
	}
	from := top.Add(-win)
	if from.UnixMilli() <= 0 {
		return lower
	}
	if f := IDFloor(from); f > lower {
		return f
	}
	return lower
}

// idTime reads the time of a time-ordered id or id floor.
func idTime(id string) (time.Time, bool) {
	if len(id) < 13 || id[8] != '-' {
		return time.Time{}, false
	}
	hi, err1 := strconv.ParseUint(id[:8], 16, 64)
	lo, err2 := strconv.ParseUint(id[9:13], 16, 64)
	if err1 != nil || err2 != nil {
		return time.Time{}, false
	}
	return time.UnixMilli(int64(hi<<16 | lo)), true
}

// rangeNewest reads up to n index keys under prefix with ids in
// [lower, upper), newest first: the keys hold inverted ids, so this is an
// ascending range, which etcd limits without reading the rest.
func rangeNewest(prefix, lower, upper string, n int) clientv3.Op {
	start := prefix
	if upper != "" {
		// ids below upper: inverted, above it. A full id is excluded
		// itself; a time floor (a prefix of ids) excludes all it begins.
		start = prefix + invertID(upper) + "\xff"
	}
	end := clientv3.GetPrefixRangeEnd(prefix)
	if lower != "" {
		end = prefix + invertID(lower) + "\xff"
	}
	return clientv3.OpGet(start, clientv3.WithRange(end), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(n)))
}

// scan returns up to n records with ids in [lower, upper), newest first,
// from index prefixes merged, the last id scanned, and whether more may
// follow.
func (s *Store) scan(ctx context.Context, prefixes []string, lower, upper string, n int) (_ []*record.Record, last string, more bool, counted int64, _ error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	// One round trip for the index ranges, one for the records.
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = rangeNewest(p, lower, upper, n)
	}
	responses, err := s.readAll(ctx, ops)
	if err != nil {
		return nil, "", false, 0, err
	}
	// Keys past the lowest last key of a cut-off range may be missing from
	// that range: keep only inverted ids up to it, and say more follow.
	var inv []string
	ceiling := ""
	for i, r := range responses {
		rr := r.GetResponseRange()
		counted = max(counted, rr.Count)
		for _, kv := range rr.Kvs {
			inv = append(inv, strings.TrimPrefix(string(kv.Key), prefixes[i]))
		}
		if rr.More && len(rr.Kvs) > 0 {
			more = true
			last := strings.TrimPrefix(string(rr.Kvs[len(rr.Kvs)-1].Key), prefixes[i])
			if ceiling == "" || last < ceiling {
				ceiling = last
			}
		}
	}
	slices.Sort(inv)
	inv = slices.Compact(inv)
	if ceiling != "" {
		inv = slices.DeleteFunc(inv, func(k string) bool { return k > ceiling })
	}
	if len(inv) > n {
		inv, more = inv[:n], true
	}
	if len(inv) == 0 {
		return nil, upper, false, counted, nil
	}
	ids := make([]string, len(inv))
	for i, k := range inv {
		ids[i] = invertID(k)
	}
	recs, err := s.getMany(ctx, ids)
	if err != nil {
		return nil, "", false, 0, err
	}
	return recs, ids[len(ids)-1], more, counted, nil
}

// getMany reads records by id in one round trip, skipping removed ones.
func (s *Store) getMany(ctx context.Context, ids []string) ([]*record.Record, error) {
	gets := make([]clientv3.Op, len(ids))
	for i, id := range ids {
		gets[i] = clientv3.OpGet(s.requestKey(id))
	}
	responses, err := s.readAll(ctx, gets)
	if err != nil {
		return nil, err
	}
	out := make([]*record.Record, 0, len(ids))
	for _, r := range responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // removed since the index was read
		}
		rec, err := decode(kvs[0].Value)
		if err != nil {
			return nil, err
		}
		out = append(out, rec)
	}
	return out, nil
}

// auditRange reads up to n audit keys of [prefix+lower, prefix+upper),
// newest first. (etcd sorts such a range whole: the audit log is an admin
// tool, read rarely.)
func auditRange(prefix, lower, upper string, n int) clientv3.Op {
	end := clientv3.GetPrefixRangeEnd(prefix)
	if upper != "" {
		end = prefix + upper
	}
	return clientv3.OpGet(prefix+lower, clientv3.WithRange(end),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(n)))
}

// AuditOptions selects a page of the audit log, newest first.
type AuditOptions struct {
	RequestID string
	Actor     string
	Action    string
	After     time.Time // inclusive
	Before    time.Time // exclusive
	Limit     int
	Cursor    string
}

// Audit returns a page of audit events and the cursor of the next page.
func (s *Store) Audit(ctx context.Context, o AuditOptions) ([]record.AuditEvent, string, error) {
	lower, upper, err := bounds(o.Cursor, o.After, o.Before)
	if err != nil {
		return nil, "", err
	}
	limit := pageSize(o.Limit)
	filtered := o.RequestID != "" || o.Actor != "" || o.Action != ""
	batch := min(limit+1, MaxLimit)
	if filtered {
		batch = MaxLimit
	}
	var out []record.AuditEvent
	for {
		cctx, cancel := s.ctx(ctx)
		resp, err := s.cli.Do(cctx, auditRange(s.prefix+"audit/", lower, upper, batch))
		cancel()
		if err != nil {
			return nil, "", unavailable(err)
		}
		for _, kv := range resp.Get().Kvs {
			var e record.AuditEvent
			if err := json.Unmarshal(kv.Value, &e); err != nil {
				return nil, "", fmt.Errorf("decoding audit event: %w", err)
			}
			upper = e.ID
			if (o.RequestID != "" && e.RequestID != o.RequestID) || (o.Actor != "" && e.Actor != o.Actor) || (o.Action != "" && e.Action != o.Action) {
				continue
			}
			out = append(out, e)
			if len(out) > limit {
				return out[:limit], out[limit-1].ID, nil
			}
		}
		if !resp.Get().More {
			return out, "", nil
		}
	}
}

// maxTxnOps is etcd's default limit on the operations of one transaction
// (--max-txn-ops); reads are split to stay under it on any cluster.
const maxTxnOps = 128

// readAll runs read operations in as few transactions as etcd allows and
// returns their responses in order. Each transaction is one consistent
// snapshot; callers tolerate keys removed between chunks.
func (s *Store) readAll(ctx context.Context, ops []clientv3.Op) ([]*etcdserverpb.ResponseOp, error) {
	out := make([]*etcdserverpb.ResponseOp, 0, len(ops))
	for len(ops) > 0 {
		chunk := ops[:min(len(ops), maxTxnOps)]
		ops = ops[len(chunk):]
		resp, err := s.cli.Txn(ctx).Then(chunk...).Commit()
		if err != nil {
			return nil, unavailable(err)
		}
		out = append(out, resp.Responses...)
	}
	return out, nil
}
