package store

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"google.golang.org/grpc"
)

// countingStore is a Store on its own client whose etcd calls are counted.
func countingStore(t *testing.T, endpoint string) (*Store, *atomic.Int64) {
	t.Helper()
	var calls atomic.Int64
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop(),
		DialOptions: []grpc.DialOption{grpc.WithChainUnaryInterceptor(func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			calls.Add(1)
			return invoker(ctx, method, req, reply, cc, opts...)
		})}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	s, err := New(cli, Options{})
	if err != nil {
		t.Fatal(err)
	}
	return s, &calls
}

// A park with the pending cap on is one etcd round trip once the gateway
// knows the requester's count, and two when another gateway parked for the
// same requester since.
func TestParkIsOneRoundTrip(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, calls := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	park := func(s *Store, resource string) (*record.Record, int64) {
		t.Helper()
		r := newRecord("alice", resource)
		before := calls.Load()
		if err := s.Create(ctx, r, nil, CreateOptions{MaxPending: 100}); err != nil {
			t.Fatal(err)
		}
		return r, calls.Load() - before
	}
	for i := range 3 {
		if _, n := park(a, fmt.Sprintf("apps/%d", i)); n != 1 {
			t.Fatalf("park %d took %d round trips", i, n)
		}
	}
	park(b, "apps/other-gateway")
	if _, n := park(a, "apps/3"); n != 2 {
		t.Fatalf("after another gateway's park: %d round trips, want 2 (the fenced write fails and returns the count)", n)
	}
	if _, n := park(a, "apps/4"); n != 1 {
		t.Fatalf("then %d round trips", n)
	}
}

// The cap is exact when two gateways park for one requester at once, and a
// gateway whose count says "full" looks again once some have ended.
func TestPendingCapAcrossGateways(t *testing.T) {
	_, srv := etcdkit.Start(t)
	a, _ := countingStore(t, srv.Endpoint)
	b, _ := countingStore(t, srv.Endpoint)
	const limit = 5
	var ok, full atomic.Int64
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			s := []*Store{a, b}[i%2]
			err := s.Create(ctx, newRecord("alice", fmt.Sprintf("apps/%d", i)), nil, CreateOptions{MaxPending: limit})
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrTooManyPending):
				full.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != limit || full.Load() != 20-limit {
		t.Fatalf("%d parked, %d refused: the cap of %d is not exact across gateways", ok.Load(), full.Load(), limit)
	}
	// One ends (through the other gateway): a has room again.
	recs, _, err := b.List(ctx, ListOptions{Requester: "alice", Limit: 1})
	if err != nil || len(recs) != 1 {
		t.Fatal(recs, err)
	}
	if _, err := b.Mutate(ctx, recs[0].ID, "", func(r *record.Record) error { return r.Cancel(r.Requester, "", time.Now()) }); err != nil {
		t.Fatal(err)
	}
	if err := a.Create(ctx, newRecord("alice", "apps/after"), nil, CreateOptions{MaxPending: limit}); err != nil {
		t.Fatalf("after one ended: %v", err)
	}
	if err := a.Create(ctx, newRecord("alice", "apps/over"), nil, CreateOptions{MaxPending: limit}); !errors.Is(err, ErrTooManyPending) {
		t.Fatalf("over the cap: %v", err)
	}
}
