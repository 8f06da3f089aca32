package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// scenario is one row of the results: the gateway next to its baseline.
type scenario struct {
	Name     string `json:"name"`
	What     string `json:"what"`
	Baseline string `json:"baseline"`
	// Max is throughput at full speed (workers connections).
	Max struct {
		Gateway  summary `json:"gateway"`
		Baseline summary `json:"baseline"`
		Ratio    float64 `json:"ratio"`
	} `json:"max"`
	// Rate is the fixed rate of the latency runs, per second.
	Rate  int `json:"fixed_rate_per_s"`
	Fixed struct {
		Gateway  summary `json:"gateway"`
		Baseline summary `json:"baseline"`
		P50Ratio float64 `json:"p50_ratio"`
		P99Ratio float64 `json:"p99_ratio"`
	} `json:"fixed"`
	Targets []target `json:"targets"`
	Note    string   `json:"note,omitempty"`
}

// target is a goal of the issue, checked on the measured ratio.
type target struct {
	What  string  `json:"what"`
	Value float64 `json:"value"`
	Want  string  `json:"want"`
	Met   bool    `json:"met"`
}

func (s scenario) line() string {
	t := ""
	for _, g := range s.Targets {
		t += fmt.Sprintf("; %s %.3f (want %s: %v)", g.What, g.Value, g.Want, g.Met)
	}
	return fmt.Sprintf("%s: %.0f/s vs %s %.0f/s; at %d/s p99 %.2f ms vs %.2f ms%s", s.Name, s.Max.Gateway.Throughput,
		s.Baseline, s.Max.Baseline.Throughput, s.Rate, s.Fixed.Gateway.P99, s.Fixed.Baseline.P99, t)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int64(a/b*1000+0.5)) / 1000
}

// compare measures gw next to base: full speed, then a fixed rate (half of
// the baseline's maximum, or of the slower side's when slowerRate).
func compare(e *env, c config, name, what, baseline string, gw, base side, slowerRate bool) scenario {
	s := scenario{Name: name, What: what, Baseline: baseline}
	log.Printf("%s: warming up", name)
	interleave([]side{gw, base}, 1, 0, c.workers, time.Second)
	log.Printf("%s: full speed, %d rounds of %s per side", name, c.rounds, c.duration)
	runs := interleave([]side{gw, base}, c.rounds, 0, c.workers, c.duration)
	s.Max.Gateway, s.Max.Baseline = throughput(runs[0]), throughput(runs[1])
	s.Max.Ratio = ratio(s.Max.Gateway.Throughput, s.Max.Baseline.Throughput)
	s.Rate = int(s.Max.Baseline.Throughput / 2)
	if slowerRate {
		s.Rate = int(min(s.Max.Baseline.Throughput, s.Max.Gateway.Throughput) / 2)
	}
	s.Rate = max(s.Rate, 1)
	log.Printf("%s: %d/s, %d rounds of %s per side", name, s.Rate, c.rounds, c.duration)
	runs = interleave([]side{gw, base}, c.rounds, s.Rate, c.workers, c.duration)
	s.Fixed.Gateway, s.Fixed.Baseline = latency(runs[0]), latency(runs[1])
	s.Fixed.P50Ratio = ratio(s.Fixed.Gateway.P50, s.Fixed.Baseline.P50)
	s.Fixed.P99Ratio = ratio(s.Fixed.Gateway.P99, s.Fixed.Baseline.P99)
	if c.profile != "" {
		for _, sd := range []side{gw, base} {
			if sd.admin == "" {
				continue
			}
			if err := profile(c, name+"-"+sd.name, sd); err != nil {
				log.Printf("%s: profile: %v", name, err)
			}
		}
	}
	return s
}

// profile drives the gateway at full speed while its CPU profile is taken.
func profile(c config, name string, gw side) error {
	if err := os.MkdirAll(c.profile, 0o755); err != nil {
		return err
	}
	secs := int(c.duration.Seconds())
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", gw.admin, secs))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(filepath.Join(c.profile, "cpu-"+name+".pprof"))
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			f.Close()
		}
		done <- err
	}()
	attack(gw.name, gw.tr, 0, c.workers, c.duration+time.Second, gw.ok, gw.opts...)
	return <-done
}

func header(tok string, kv ...string) http.Header {
	h := http.Header{"Authorization": {"Bearer " + tok}}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

func scenarioA(e *env, c config) (scenario, error) {
	get := func(base string) vegeta.Targeter {
		h := header(e.reader)
		return targeter(func(_ int64, t *vegeta.Target) {
			*t = vegeta.Target{Method: "GET", URL: base + "/items/1", Header: h}
		})
	}
	s := compare(e, c, "A", "GET with a valid token: pass-through", "plain Caddy reverse_proxy",
		side{name: "gateway", admin: e.gwAdmin, tr: get(e.gwURL), ok: 200}, side{name: "plain", admin: e.plainAdmin, tr: get(e.plainURL), ok: 200}, false)
	s.Targets = []target{
		{What: "throughput ratio", Value: s.Max.Ratio, Want: "≥ 0.95", Met: s.Max.Ratio >= 0.95},
		{What: "p99 ratio at half of plain Caddy's max", Value: s.Fixed.P99Ratio, Want: "≤ 1.2", Met: s.Fixed.P99Ratio <= 1.2},
	}
	return s, nil
}

// appBody is the body of the mutating calls.
const appBody = `{"name":"payroll-client","version":"4.2.1","assignments":[{"group":"all-laptops","intent":"required"}]}`

func (e *env) post(base string) vegeta.Targeter {
	h := header(e.releaser, "Content-Type", "application/json")
	return targeter(func(n int64, t *vegeta.Target) {
		*t = vegeta.Target{Method: "POST", URL: fmt.Sprintf("%s/apps/%d", base, n%1000), Header: h, Body: []byte(appBody)}
	})
}

func scenarioB(e *env, c config) (scenario, error) {
	s := compare(e, c, "B", "POST that the policy allows (trusted app release manager), shipped policy library: JWT + policy + pass-through",
		"plain Caddy reverse_proxy", side{name: "gateway", admin: e.gwAdmin, tr: e.post(e.gwURL), ok: 200}, side{name: "plain", admin: e.plainAdmin, tr: e.post(e.plainURL), ok: 200}, true)
	s.Targets = []target{{What: "throughput ratio", Value: s.Max.Ratio, Want: "≥ 0.85", Met: s.Max.Ratio >= 0.85}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// scenarioB1 is B on a gateway with a one-rule policy (bench/policies): the
// gateway's own cost, apart from the policies it evaluates.
func scenarioB1(e *env, c config) (scenario, error) {
	s := compare(e, c, "B′", "the same POST, one-rule policy (bench/policies/minimal.rego)",
		"plain Caddy reverse_proxy", side{name: "gateway", admin: e.minAdmin, tr: e.post(e.minURL), ok: 200}, side{name: "plain", admin: e.plainAdmin, tr: e.post(e.plainURL), ok: 200}, true)
	s.Targets = []target{{What: "throughput ratio", Value: s.Max.Ratio, Want: "≥ 0.85", Met: s.Max.Ratio >= 0.85}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// parkTargeter parks DELETE /apps/{n}: a new resource per call, spread over
// the requesters so no one reaches the pending cap.
func (e *env) parkTargeter(prefix string) vegeta.Targeter {
	headers := make([]http.Header, len(e.requesters))
	for i, tok := range e.requesters {
		headers[i] = header(tok, "Approval-Justification", "CHG-2231 retire the old payroll client")
	}
	return targeter(func(n int64, t *vegeta.Target) {
		*t = vegeta.Target{Method: "DELETE", URL: fmt.Sprintf("%s/apps/%s-%d", e.gwURL, prefix, n), Header: headers[n%int64(len(headers))]}
	})
}

func scenarioC(e *env, c config) (scenario, error) {
	// One park first, to size the raw puts like the stored request.
	resp, err := doJSON("DELETE", e.gwURL+"/apps/c-size", e.requesters[0], "CHG-2231 retire the old payroll client", nil)
	if err != nil || resp.status != http.StatusAccepted {
		return scenario{}, fmt.Errorf("C: sizing park: %v %+v", err, resp)
	}
	size, err := storedSize(e.etcd, resp.ID)
	if err != nil {
		return scenario{}, err
	}
	puts := &etcdPuts{cli: e.etcd, prefix: "/bench/raw/", value: strings.Repeat("x", size)}
	raw := side{name: "etcd", ok: http.StatusAccepted, opts: []func(*vegeta.Attacker){vegeta.Client(&http.Client{Transport: puts})},
		tr: targeter(func(_ int64, t *vegeta.Target) { *t = vegeta.Target{Method: "PUT", URL: "http://etcd/put"} })}
	s := compare(e, c, "C", "DELETE that the policy parks: JWT + policy + one etcd transaction (embedded etcd)",
		fmt.Sprintf("raw etcd puts of %d bytes on the same etcd", size), side{name: "gateway", admin: e.gwAdmin, tr: e.parkTargeter("c"), ok: http.StatusAccepted}, raw, true)
	s.Targets = []target{{What: "parks / raw puts", Value: s.Max.Ratio, Want: "≥ 0.80", Met: s.Max.Ratio >= 0.80}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// storedSize is the bytes a park stored: the record and the body.
func storedSize(cli *clientv3.Client, id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	n := 0
	for _, k := range []string{"requests/", "payloads/"} {
		resp, err := cli.Get(ctx, "/approvals/"+k+id)
		if err != nil {
			return 0, err
		}
		if len(resp.Kvs) == 0 {
			return 0, fmt.Errorf("no %s%s in the store", k, id)
		}
		n += len(resp.Kvs[0].Value)
	}
	return n, nil
}

type answer struct {
	status int
	ID     string `json:"id"`
	Status string `json:"status"`
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func doJSON(method, url, tok, justification string, body []byte) (answer, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if justification != "" {
		req.Header.Set("Approval-Justification", justification)
	}
	resp, err := client.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode}
	_ = json.Unmarshal(b, &a)
	return a, nil
}

// scenarioD runs whole lifecycles (park, approve, complete) from workers
// in parallel and counts them per second; there is no baseline.
func scenarioD(e *env, c config) (scenario, error) {
	const workers = 16
	d := c.duration * time.Duration(c.rounds)
	log.Printf("D: lifecycles from %d workers for %s", workers, d)
	api := e.gwURL + "/.approvals/api/v1/requests/"
	var (
		mu        sync.Mutex
		latencies []time.Duration
		failures  []string
		failed    atomic.Int64
		seq       atomic.Int64
		wg        sync.WaitGroup
	)
	fail := func(err string) {
		failed.Add(1)
		mu.Lock()
		if len(failures) < 5 {
			failures = append(failures, err)
		}
		mu.Unlock()
	}
	begin := time.Now()
	deadline := begin.Add(d)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				n := seq.Add(1)
				req := e.requesters[(int(n)*7+w)%len(e.requesters)]
				t0 := time.Now()
				a, err := doJSON("DELETE", fmt.Sprintf("%s/apps/d-%d", e.gwURL, n), req, "CHG-2231 retire the old payroll client", nil)
				if err != nil || a.status != http.StatusAccepted {
					fail(fmt.Sprintf("park: %v %d", err, a.status))
					continue
				}
				ok := true
				for _, approver := range e.approvers {
					b, err := doJSON("POST", api+a.ID+"/approve", approver, "", []byte(`{"notes":"looks right"}`))
					if err != nil || b.status != http.StatusOK {
						fail(fmt.Sprintf("approve: %v %d", err, b.status))
						ok = false
						break
					}
					if b.Status == "approved" {
						break
					}
				}
				if !ok {
					continue
				}
				b, err := doJSON("POST", api+a.ID+"/complete", req, "", nil)
				if err != nil || b.status != http.StatusOK {
					fail(fmt.Sprintf("complete: %v %d", err, b.status))
					continue
				}
				mu.Lock()
				latencies = append(latencies, time.Since(t0))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(begin)
	s := scenario{Name: "D", What: fmt.Sprintf("whole lifecycle: park, approve (one or two approvers, as the policy asks at that hour), complete with replay; %d workers", workers), Baseline: "—"}
	s.Max.Gateway = summary{Throughput: round1(float64(len(latencies)) / elapsed.Seconds()), Requests: len(latencies) + int(failed.Load()),
		Failed: int(failed.Load()), Errors: failures, P50: quantile(latencies, 0.5), P99: quantile(latencies, 0.99)}
	s.Note = "lifecycles per second at full speed; p50/p99 of a whole lifecycle"
	return s, nil
}
