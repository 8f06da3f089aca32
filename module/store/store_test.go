package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/google/uuid"
)

var ctx = context.Background()

func newStore(t *testing.T) *Store {
	t.Helper()
	cli, _ := etcdkit.Start(t)
	s, err := New(cli, Options{Prefix: "/test/approvals/"})
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func newRecord(subject, resource string, groups ...string) *record.Record {
	if len(groups) == 0 {
		groups = []string{"approvers"}
	}
	var reqs []record.Requirement
	for _, g := range groups {
		reqs = append(reqs, record.Requirement{Group: g, Required: 1})
	}
	now := time.Now()
	return &record.Record{
		ID: uuid.Must(uuid.NewV7()).String(), Status: record.NeedsApproval,
		Requester: record.Principal{Subject: subject, Groups: []string{"ops"}},
		Resource:  resource, Operation: record.Operation{Method: "POST", Path: "/" + resource},
		Approvers: record.NewRequirements(reqs), CreatedAt: now, UpdatedAt: now, ExpiresAt: now.Add(time.Hour),
	}
}

func TestCreateGetAndPayload(t *testing.T) {
	s := newStore(t)
	r := newRecord("alice", "apps/1")
	if err := s.Create(ctx, r, []byte(`{"a":1}`), CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	got, rev, err := s.Get(ctx, r.ID)
	if err != nil || rev == 0 || got.ID != r.ID || got.Requester.Subject != "alice" {
		t.Fatalf("%+v %d %v", got, rev, err)
	}
	_, _, body, err := s.GetWithPayload(ctx, r.ID)
	if err != nil || string(body) != `{"a":1}` {
		t.Fatalf("payload %q %v", body, err)
	}
	// A call without a body (a DELETE) writes no payload key: one key
	// fewer per park.
	empty := newRecord("alice", "apps/2")
	if err := s.Create(ctx, empty, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if resp, err := s.cli.Get(ctx, s.payloadKey(empty.ID)); err != nil || len(resp.Kvs) != 0 {
		t.Fatalf("payload key of a bodiless park: %v %v", resp, err)
	}
	if _, _, body, err := s.GetWithPayload(ctx, empty.ID); err != nil || body == nil || len(body) != 0 {
		t.Fatalf("payload of a bodiless park %q %v", body, err)
	}
	if _, _, err := s.Get(ctx, uuid.Must(uuid.NewV7()).String()); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing id: %v", err)
	}
	for _, bad := range []string{"", "../x", "00000000-0000-0000-0000-00000000000G", r.ID + "/"} {
		if _, _, err := s.Get(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Fatalf("id %q: %v", bad, err)
		}
	}
}

func TestOnePendingRequestPerResource(t *testing.T) {
	s := newStore(t)
	first := newRecord("alice", "apps/1")
	if err := s.Create(ctx, first, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	second := newRecord("bob", "apps/1")
	var pe *PendingError
	if err := s.Create(ctx, second, nil, CreateOptions{}); !errors.As(err, &pe) || pe.ID != first.ID {
		t.Fatalf("second create: %v", err)
	}
	if _, _, err := s.Get(ctx, second.ID); !errors.Is(err, ErrNotFound) {
		t.Fatal("the refused request was stored")
	}
	// "apps/1" and "apps/10" are different resources.
	if err := s.Create(ctx, newRecord("bob", "apps/10"), nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Approving keeps the claim; a terminal state releases it.
	bob := record.Principal{Subject: "bob", Groups: []string{"approvers"}}
	if _, err := s.Mutate(ctx, first.ID, "", func(r *record.Record) error { return r.Approve(bob, record.ApproveInput{}, time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newRecord("carol", "apps/1"), nil, CreateOptions{}); !errors.As(err, &pe) {
		t.Fatalf("approved request must still hold the resource: %v", err)
	}
	if _, err := s.Mutate(ctx, first.ID, "", func(r *record.Record) error { return r.Cancel(r.Requester, "", time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if err := s.Create(ctx, newRecord("carol", "apps/1"), nil, CreateOptions{}); err != nil {
		t.Fatalf("resource not released by a terminal state: %v", err)
	}
}

func TestMutateRetriesOnConflict(t *testing.T) {
	s := newStore(t)
	r := newRecord("alice", "apps/1")
	r.Approvers = record.NewRequirements([]record.Requirement{{Group: "approvers", Required: 10}})
	if err := s.Create(ctx, r, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := record.Principal{Subject: fmt.Sprintf("approver-%d", i), Groups: []string{"approvers"}}
			_, err := s.Mutate(ctx, r.ID, "", func(r *record.Record) error { return r.Approve(p, record.ApproveInput{}, time.Now()) })
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	got, _, _ := s.Get(ctx, r.ID)
	if n := len(got.Approvers[0].Approvals); n != 10 || got.Status != record.Approved || len(got.History) != 10 {
		t.Fatalf("concurrent approvals lost: %d counted, status %s", n, got.Status)
	}
}

func TestMutateReturnsRefusalWithoutWriting(t *testing.T) {
	s := newStore(t)
	r := newRecord("alice", "apps/1")
	if err := s.Create(ctx, r, nil, CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	_, rev, _ := s.Get(ctx, r.ID)
	_, err := s.Mutate(ctx, r.ID, "", func(r *record.Record) error { return r.Approve(r.Requester, record.ApproveInput{}, time.Now()) })
	var re *record.Error
	if !errors.As(err, &re) || re.Code != record.CodeSelfApproval {
		t.Fatalf("got %v", err)
	}
	if _, rev2, _ := s.Get(ctx, r.ID); rev2 != rev {
		t.Fatal("a refused action wrote to the store")
	}
}

func TestListViewsAndPages(t *testing.T) {
	s := newStore(t)
	var all []*record.Record
	for i := range 25 {
		sub := []string{"alice", "bob"}[i%2]
		group := []string{"approvers", "security", "network"}[i%3]
		r := newRecord(sub, fmt.Sprintf("apps/%d", i), group)
		if i%5 == 0 {
			r.Status = record.Canceled
		}
		if err := s.Create(ctx, r, nil, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		all = append(all, r)
	}
	want := func(keep func(*record.Record) bool) []string {
		var ids []string
		for i := len(all) - 1; i >= 0; i-- {
			if keep(all[i]) {
				ids = append(ids, all[i].ID)
			}
		}
		return ids
	}
	tests := []struct {
		name string
		opts ListOptions
		keep func(*record.Record) bool
	}{
		{"all", ListOptions{}, func(*record.Record) bool { return true }},
		{"mine", ListOptions{Requester: "alice"}, func(r *record.Record) bool { return r.Requester.Subject == "alice" }},
		{"received, two groups", ListOptions{Groups: []string{"security", "network"}}, func(r *record.Record) bool {
			return r.Approvers[0].Group != "approvers"
		}},
		{"status filter", ListOptions{Statuses: []record.Status{record.Canceled}}, func(r *record.Record) bool { return r.Status == record.Canceled }},
		{"mine and pending", ListOptions{Requester: "bob", Statuses: []record.Status{record.NeedsApproval}}, func(r *record.Record) bool {
			return r.Requester.Subject == "bob" && r.Status == record.NeedsApproval
		}},
		{"nobody", ListOptions{Requester: "zed"}, func(*record.Record) bool { return false }},
	}
	for _, tc := range tests {
		for _, limit := range []int{1, 3, 4, 100} {
			t.Run(fmt.Sprintf("%s/limit %d", tc.name, limit), func(t *testing.T) {
				o := tc.opts
				o.Limit = limit
				var got []string
				for pages := 0; ; pages++ {
					if pages > 30 {
						t.Fatal("pagination does not end")
					}
					recs, next, err := s.List(ctx, o)
					if err != nil {
						t.Fatal(err)
					}
					if len(recs) > limit {
						t.Fatalf("page of %d over limit %d", len(recs), limit)
					}
					for _, r := range recs {
						got = append(got, r.ID)
					}
					if next == "" {
						break
					}
					if len(recs) == 0 {
						t.Fatal("empty page with a next cursor")
					}
					o.Cursor = next
				}
				w := want(tc.keep)
				if fmt.Sprint(got) != fmt.Sprint(w) {
					t.Fatalf("got %d ids, want %d\n got %v\nwant %v", len(got), len(w), got, w)
				}
			})
		}
	}
	if _, _, err := s.List(ctx, ListOptions{Cursor: "nope"}); !errors.Is(err, ErrBadCursor) {
		t.Fatalf("bad cursor: %v", err)
	}
}

func TestPrefixValidation(t *testing.T) {
	for _, p := range []string{"approvals", "/approvals", "approvals/", "/a//b/", "/a/../b/", "/"} {
		if err := ValidatePrefix(p); err == nil {
			t.Errorf("%q accepted", p)
		}
	}
	for _, p := range []string{"/approvals/", "/team-a/approvals/"} {
		if err := ValidatePrefix(p); err != nil {
			t.Errorf("%q: %v", p, err)
		}
	}
}

func TestUnreachableStoreIsUnavailable(t *testing.T) {
	cli, srv := etcdkit.Start(t)
	s, _ := New(cli, Options{Timeout: 500 * time.Millisecond})
	srv.Close()
	err := s.Create(ctx, newRecord("alice", "apps/1"), nil, CreateOptions{})
	var ue *UnavailableError
	if !errors.As(err, &ue) {
		t.Fatalf("got %v", err)
	}
	if _, _, err := s.Get(ctx, uuid.Must(uuid.NewV7()).String()); !errors.As(err, &ue) {
		t.Fatalf("get: %v", err)
	}
}

// A page read through a filter fetches hundreds of records per round trip:
// more than etcd allows in one transaction (128 operations by default).
func TestListReadsMoreRecordsThanOneTransactionHolds(t *testing.T) {
	s := newStore(t)
	const n = 300
	var want []string
	for i := range n {
		r := newRecord("alice", fmt.Sprintf("apps/%d", i))
		if i%100 == 7 {
			r.Status = record.Completing
			want = append([]string{r.ID}, want...)
		}
		if err := s.Create(ctx, r, nil, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	recs, next, err := s.List(ctx, ListOptions{Statuses: []record.Status{record.Completing}, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range recs {
		got = append(got, r.ID)
	}
	if fmt.Sprint(got) != fmt.Sprint(want) || next != "" {
		t.Fatalf("got %v (next %q), want %v", got, next, want)
	}
	recs, _, err = s.List(ctx, ListOptions{Limit: MaxLimit})
	if err != nil || len(recs) != n {
		t.Fatalf("a page of %d: %d records, %v", MaxLimit, len(recs), err)
	}
}

// Lists read the index in time windows: pages stay whole and in order
// across empty stretches, dense bursts and years.
func TestListAcrossTimeWindows(t *testing.T) {
	s := newStore(t)
	now := time.Now()
	var times []time.Time
	for i := range 12 { // sparse: one a month, back two years
		times = append(times, now.Add(-time.Duration(i*61)*24*time.Hour))
	}
	for i := range 150 { // a burst an hour ago, 10 ms apart
		times = append(times, now.Add(-time.Hour+time.Duration(i)*10*time.Millisecond))
	}
	times = append(times, now.Add(2*time.Minute)) // a clock a little ahead
	var want []string
	for i, at := range times {
		r := newRecord("alice", fmt.Sprintf("apps/%d", i))
		id, err := NewID(at)
		if err != nil {
			t.Fatal(err)
		}
		r.ID, r.CreatedAt = id, at
		if err := s.Create(ctx, r, nil, CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		want = append(want, id)
	}
	slices.Sort(want)
	slices.Reverse(want)
	for _, o := range []ListOptions{{Limit: 7}, {Limit: 7, Requester: "alice"}, {Limit: 500}, {Limit: 3, Statuses: []record.Status{record.NeedsApproval}}} {
		for _, window := range []time.Duration{0, time.Second, 400 * 24 * time.Hour} {
			for i := range s.windows {
				s.windows[i].Store(int64(window))
			}
			var got []string
			for pages := 0; ; pages++ {
				if pages > 200 {
					t.Fatal("pagination does not end")
				}
				recs, next, err := s.List(ctx, o)
				if err != nil {
					t.Fatal(err)
				}
				for _, r := range recs {
					got = append(got, r.ID)
				}
				if next == "" {
					break
				}
				o.Cursor = next
			}
			o.Cursor = ""
			if !slices.Equal(got, want) {
				t.Fatalf("limit %d, window %s: got %d ids, want %d", o.Limit, window, len(got), len(want))
			}
		}
	}
	// A time range is honoured inside the windows.
	recs, _, err := s.List(ctx, ListOptions{Limit: 500, CreatedAfter: now.Add(-400 * 24 * time.Hour), CreatedBefore: now.Add(-30 * 24 * time.Hour)})
	if err != nil || len(recs) != 6 {
		t.Fatalf("a year back to a month back: %d records, %v", len(recs), err)
	}
}
