package store

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// BenchmarkListPage lists one page of 50 of a requester's requests, and
// one of all requests, with 100 and with 100,000 requests stored: a page
// must cost the same.
func BenchmarkListPage(b *testing.B) {
	for _, n := range []int{100, 100000} {
		b.Run(fmt.Sprintf("stored=%d", n), func(b *testing.B) {
			cli, _ := etcdkit.Start(b)
			s, err := New(cli, Options{Timeout: 30 * time.Second})
			if err != nil {
				b.Fatal(err)
			}
			// Fill the store in large transactions, as Create would lay it
			// out, with requests spread over the last 30 days (the default
			// retention) as a gateway in use would have them.
			span := 30 * 24 * time.Hour
			base := time.Now().Add(-span)
			var ops []clientv3.Op
			flush := func() {
				if _, err := cli.Txn(context.Background()).Then(ops...).Commit(); err != nil {
					b.Fatal(err)
				}
				ops = ops[:0]
			}
			for i := range n {
				r := newRecord([]string{"alice", "bob", "carol"}[i%3], fmt.Sprintf("apps/%d", i))
				r.ID, _ = NewID(base.Add(span / time.Duration(n) * time.Duration(i)))
				val, _ := json.Marshal(r)
				ops = append(ops, clientv3.OpPut(s.requestKey(r.ID), string(val)))
				for _, k := range s.indexKeys(r) {
					ops = append(ops, clientv3.OpPut(k, ""))
				}
				if len(ops) >= 120 {
					flush()
				}
			}
			if len(ops) > 0 {
				flush()
			}
			ctx := context.Background()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				recs, _, err := s.List(ctx, ListOptions{Requester: "alice", Limit: 50})
				if err != nil || len(recs) != min(50, (n+2)/3) {
					b.Fatal(len(recs), err)
				}
				recs, _, err = s.List(ctx, ListOptions{Limit: 50})
				if err != nil || len(recs) != 50 {
					b.Fatal(len(recs), err)
				}
			}
		})
	}
}
