package main

import (
	"fmt"
	"log"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"
)

// memoryResult is the gateway's resident memory with few and with many
// pending requests in its store.
type memoryResult struct {
	Store   string `json:"store"`
	Pending []int  `json:"pending"`
	// AfterParking is the RSS of the gateway that parked them, right after.
	AfterParking []int64 `json:"rss_after_parking_bytes"`
	// Serving is the RSS of a fresh gateway on that store after the same
	// workload (sweeps over every pending request, list pages, reads).
	Serving []int64 `json:"rss_serving_bytes"`
	// ListP50 is the median time of a first page of all requests through
	// the API, while the sweeper reads every pending request each second
	// on the same cores (the list page's own target is the store's
	// microbenchmark).
	ListP50 []float64 `json:"list_page_p50_ms"`
	Targets []target  `json:"targets"`
}

func (m memoryResult) line() string {
	return fmt.Sprintf("memory: pending %v: RSS after parking %v MiB, serving %v MiB; list page p50 %v ms; targets %+v",
		m.Pending, mib(m.AfterParking), mib(m.Serving), m.ListP50, m.Targets)
}

func mib(bs []int64) []float64 {
	out := make([]float64, len(bs))
	for i, b := range bs {
		out[i] = round1(float64(b) / (1 << 20))
	}
	return out
}

// memory leaves 100 and 10,000 requests pending through a gateway on an
// etcd of its own process (so the figure is the gateway's memory, not
// etcd's), and measures the RSS of that gateway and of a fresh one serving
// the store. Both gateways park 10,000 (for 100 pending, 9,900 are then
// canceled), so that the gateway with few pending has done the same work
// and reached its working heap too.
func memory(work, bin string, c config) (memoryResult, error) {
	m := memoryResult{Store: "etcd as a separate process (one member)", Pending: []int{100, 10000}}
	etcd, client, err := startEtcd(work, "etcd")
	if err != nil {
		return m, err
	}
	defer etcd.stop()
	for _, n := range m.Pending {
		e := &env{work: work, bin: bin}
		// The same 125 requesters park in both runs (80 each of 10,000, under
		// the default cap of 100), so only the number of pending requests
		// differs, not the number of identities the gateway has seen.
		for i := range 125 {
			e.requesters = append(e.requesters, token(fmt.Sprintf("requester-%d", i), "it-ops"))
		}
		e.reader = token("auditor", "approval-admins")
		gw := func(name string) (*proc, error) {
			port := freePort()
			e.gwURL = fmt.Sprintf("http://127.0.0.1:%d", port)
			policies, _ := filepath.Abs("policies")
			cfg := gatewayConfig(work, name, freePort(), port,
				etcdStore(client, fmt.Sprintf("/rss-%d/", n)), policies,
				fmt.Sprintf("127.0.0.1:%d", freePort()), "\n\t\tadmin_groups approval-admins\n\t\tsweep_interval 1s")
			return e.caddy(name, cfg, e.gwURL+"/.approvals/healthz")
		}
		filler, err := gw(fmt.Sprintf("filler-%d", n))
		if err != nil {
			return m, err
		}
		// Both gateways park as many (the larger count), and the requesters
		// cancel all but n: the two have done the same parking work and
		// differ in what is left pending.
		log.Printf("memory: parking %d, leaving %d pending", m.Pending[len(m.Pending)-1], n)
		if err := park(e, m.Pending[len(m.Pending)-1], n); err != nil {
			filler.stop()
			return m, err
		}
		time.Sleep(3 * time.Second)
		rss, err := filler.rss()
		filler.stop()
		if err != nil {
			return m, err
		}
		m.AfterParking = append(m.AfterParking, rss)

		served, err := gw(fmt.Sprintf("served-%d", n))
		if err != nil {
			return m, err
		}
		p50, err := serve(e, 10*time.Second)
		if err == nil {
			time.Sleep(3 * time.Second)
			rss, err = served.rss()
		}
		served.stop()
		if err != nil {
			return m, err
		}
		m.Serving = append(m.Serving, rss)
		m.ListP50 = append(m.ListP50, p50)
	}
	a := ratio(float64(m.AfterParking[1]), float64(m.AfterParking[0]))
	s := ratio(float64(m.Serving[1]), float64(m.Serving[0]))
	m.Targets = []target{
		{What: "RSS of the parking gateway, 10,000 / 100 pending", Value: a, Want: "≤ 1.10", Met: a <= 1.10},
		{What: "RSS of a gateway serving the store, 10,000 / 100 pending", Value: s, Want: "≤ 1.10", Met: s <= 1.10},
	}
	return m, nil
}

// park parks n requests from 32 workers, then has their requesters cancel
// all but the first keep of them.
func park(e *env, n, keep int) error {
	ids := make([]string, n)
	err := workers(32, n, func(i int) error {
		a, err := doJSON("DELETE", fmt.Sprintf("%s/apps/m-%d", e.gwURL, i), e.requesters[i%len(e.requesters)], "CHG-2231 retire the old payroll client", nil)
		if err != nil || a.status != http.StatusAccepted {
			return fmt.Errorf("park %d: %v %d", i, err, a.status)
		}
		ids[i] = a.ID
		return nil
	})
	if err != nil {
		return err
	}
	return workers(32, n-keep, func(i int) error {
		i += keep
		a, err := doJSON("POST", e.gwURL+"/.approvals/api/v1/requests/"+ids[i]+"/cancel", e.requesters[i%len(e.requesters)], "", nil)
		if err != nil || a.status != http.StatusOK {
			return fmt.Errorf("cancel %d: %v %d", i, err, a.status)
		}
		return nil
	})
}

// workers calls fn(0) … fn(n-1) from w goroutines and returns the first
// error (each worker stops at its first).
func workers(w, n int, fn func(i int) error) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, w)
	for range w {
		wg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := fn(i); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// serve runs the same workload on any store for d: list pages of all
// requests and of one requester, and reads of records, from 4 workers;
// the sweeper goes over every pending request each second meanwhile. It
// returns the median time of a first page of all requests.
func serve(e *env, d time.Duration) (float64, error) {
	api := e.gwURL + "/.approvals/api/v1/requests"
	var mu sync.Mutex
	var lists []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	deadline := time.Now().Add(d)
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline); i++ {
				t0 := time.Now()
				a, err := doJSON("GET", api+"?view=all&limit=50", e.reader, "", nil)
				took := time.Since(t0)
				if err == nil && a.status != http.StatusOK {
					err = fmt.Errorf("list: %d", a.status)
				}
				if err == nil {
					_, err = doJSON("GET", api+"?view=mine&limit=50", e.requesters[(w*31+i)%100], "", nil)
				}
				mu.Lock()
				lists = append(lists, took)
				if err != nil && firstErr == nil {
					firstErr = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return quantile(lists, 0.5), firstErr
}
