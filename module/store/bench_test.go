package store

import (
	"context"
	"encoding/json"
	"fmt"
	"runtime"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"go.etcd.io/etcd/api/v3/mvccpb"
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

// BenchmarkOpenViewMemory applies 10,000 parked requests (from 125
// requesters, as the load benchmark parks them) to a gateway's view of the
// open requests, as its watch would, and reports the live heap the view
// keeps per request and the garbage each applied change leaves.
func BenchmarkOpenViewMemory(b *testing.B) {
	const n = 10000
	var raws [][]byte
	for i := range n {
		r := newRecord(fmt.Sprintf("requester-%d", i%125), fmt.Sprintf("devices/%d", i), "device-approvers")
		raw, err := json.Marshal(r)
		if err != nil {
			b.Fatal(err)
		}
		raws = append(raws, raw)
	}
	s, err := New(nil, Options{})
	if err != nil {
		b.Fatal(err)
	}
	var live, garbage float64
	for b.Loop() {
		o := newOpenRequests(s)
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		for i, raw := range raws {
			o.apply(int64(i+1), []*clientv3.Event{{Type: clientv3.EventTypePut,
				Kv: &mvccpb.KeyValue{Key: []byte(s.prefix + "requests/" + idOf(raw)), Value: raw, ModRevision: int64(i + 1)}}})
		}
		runtime.ReadMemStats(&after)
		allocated := after.TotalAlloc - before.TotalAlloc
		runtime.GC()
		runtime.ReadMemStats(&after)
		live = float64(after.HeapAlloc-before.HeapAlloc) / n
		garbage = (float64(allocated) - live*n) / n
		runtime.KeepAlive(o)
	}
	b.ReportMetric(live, "live-B/request")
	b.ReportMetric(garbage, "garbage-B/change")
}

// idOf is the id of a stored record.
func idOf(raw []byte) string {
	var r struct{ ID string }
	_ = json.Unmarshal(raw, &r)
	return r.ID
}
