package store

import (
	"context"
	"errors"
	"slices"
	"strings"

	"github.com/approval-gateway/gateway/module/record"
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
	// Statuses keeps only requests in one of these statuses.
	Statuses []record.Status
	// Limit is the page size: DefaultLimit when 0, at most MaxLimit.
	Limit int
	// Cursor continues after the request with this id.
	Cursor string
}

// ErrBadCursor is returned for a cursor that is not a request id.
var ErrBadCursor = errors.New("cursor is not a request id")

// List returns a page of requests and the cursor of the next page ("" on the
// last page). Reads go through the index of the view in batches, so a page
// costs the same however many requests are stored.
func (s *Store) List(ctx context.Context, o ListOptions) ([]*record.Record, string, error) {
	if o.Cursor != "" && !ValidID(o.Cursor) {
		return nil, "", ErrBadCursor
	}
	limit := o.Limit
	if limit <= 0 {
		limit = DefaultLimit
	}
	limit = min(limit, MaxLimit)
	var prefixes []string
	switch {
	case o.Requester != "":
		prefixes = []string{s.requesterIndex(o.Requester)}
	case len(o.Groups) > 0:
		for _, g := range o.Groups {
			prefixes = append(prefixes, s.groupIndex(g))
		}
	}
	batch := min(limit+1, MaxLimit)
	if len(o.Statuses) > 0 {
		batch = MaxLimit // filtered views skip records; read more per round trip
	}
	cursor := o.Cursor
	var out []*record.Record
	for {
		recs, last, more, err := s.scan(ctx, prefixes, cursor, batch)
		if err != nil {
			return nil, "", err
		}
		cursor = last
		for _, r := range recs {
			if len(o.Statuses) > 0 && !slices.Contains(o.Statuses, r.Status) {
				continue
			}
			out = append(out, r)
			if len(out) > limit {
				return out[:limit], out[limit-1].ID, nil
			}
		}
		if !more {
			return out, "", nil
		}
	}
}

// scan returns up to n records with ids below cursor, newest first, from the
// request keys themselves (prefixes empty) or from index prefixes merged,
// the last id scanned, and whether more may follow.
func (s *Store) scan(ctx context.Context, prefixes []string, cursor string, n int) ([]*record.Record, string, bool, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	rangeOp := func(prefix string, opts ...clientv3.OpOption) clientv3.Op {
		opts = append(opts, clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(n)))
		if cursor != "" {
			opts = append(opts, clientv3.WithRange(prefix+cursor))
		} else {
			opts = append(opts, clientv3.WithPrefix())
		}
		return clientv3.OpGet(prefix, opts...)
	}
	if len(prefixes) == 0 {
		resp, err := s.cli.Do(ctx, rangeOp(s.prefix+"requests/"))
		if err != nil {
			return nil, "", false, unavailable(err)
		}
		kvs := resp.Get().Kvs
		out := make([]*record.Record, 0, len(kvs))
		for _, kv := range kvs {
			rec, err := decode(kv.Value)
			if err != nil {
				return nil, "", false, err
			}
			out = append(out, rec)
		}
		last := cursor
		if len(out) > 0 {
			last = out[len(out)-1].ID
		}
		return out, last, resp.Get().More, nil
	}

	// One round trip for the index ranges, one for the records.
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = rangeOp(p, clientv3.WithKeysOnly())
	}
	resp, err := s.cli.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, "", false, unavailable(err)
	}
	// Ids below the highest last id of a cut-off range may be missing from
	// that range: keep only ids at or above it, and say more follow.
	var ids []string
	floor, more := "", false
	for i, r := range resp.Responses {
		rr := r.GetResponseRange()
		for _, kv := range rr.Kvs {
			ids = append(ids, strings.TrimPrefix(string(kv.Key), prefixes[i]))
		}
		if rr.More && len(rr.Kvs) > 0 {
			more = true
			floor = max(floor, strings.TrimPrefix(string(rr.Kvs[len(rr.Kvs)-1].Key), prefixes[i]))
		}
	}
	slices.Sort(ids)
	slices.Reverse(ids)
	ids = slices.Compact(ids)
	if floor != "" {
		ids = slices.DeleteFunc(ids, func(id string) bool { return id < floor })
	}
	if len(ids) > n {
		ids, more = ids[:n], true
	}
	if len(ids) == 0 {
		return nil, cursor, false, nil
	}
	gets := make([]clientv3.Op, len(ids))
	for i, id := range ids {
		gets[i] = clientv3.OpGet(s.requestKey(id))
	}
	resp, err = s.cli.Txn(ctx).Then(gets...).Commit()
	if err != nil {
		return nil, "", false, unavailable(err)
	}
	out := make([]*record.Record, 0, len(ids))
	for _, r := range resp.Responses {
		kvs := r.GetResponseRange().Kvs
		if len(kvs) == 0 {
			continue // removed since the index was read
		}
		rec, err := decode(kvs[0].Value)
		if err != nil {
			return nil, "", false, err
		}
		out = append(out, rec)
	}
	return out, ids[len(ids)-1], more, nil
}
