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
	// Invalid is why the figure does not count (a fixed-rate phase that did
	// not achieve its rate); such a target is not met.
	Invalid string `json:"invalid,omitempty"`
}

// fixedInvalid is why the fixed-rate figures of s do not count, "" if
// they do: either side's reason.
func (s scenario) fixedInvalid() string {
	var why []string
	if s.Fixed.Gateway.Invalid != "" {
		why = append(why, "gateway "+s.Fixed.Gateway.Invalid)
	}
	if s.Fixed.Baseline.Invalid != "" {
		why = append(why, "baseline "+s.Fixed.Baseline.Invalid)
	}
	return strings.Join(why, "; ")
}

// fixedTarget is a target on a fixed-rate figure: met only if that phase
// achieved its rate on both sides.
func (s scenario) fixedTarget(what string, value float64, want string, met bool) target {
	why := s.fixedInvalid()
	return target{What: what, Value: value, Want: want, Met: met && why == "", Invalid: why}
}

func (s scenario) line() string {
	t := ""
	for _, g := range s.Targets {
		t += fmt.Sprintf("; %s %.3f (want %s: %v)", g.What, g.Value, g.Want, g.Met)
	}
	fixed := fmt.Sprintf("p99 %.2f ms vs %.2f ms", s.Fixed.Gateway.P99, s.Fixed.Baseline.P99)
	if why := s.fixedInvalid(); why != "" {
		fixed = "invalid: " + why
	}
	return fmt.Sprintf("%s: %.0f/s vs %s %.0f/s; at %d/s %s%s", s.Name, s.Max.Gateway.Throughput,
		s.Baseline, s.Max.Baseline.Throughput, s.Rate, fixed, t)
}

// roundRatio is the median of the rounds' ratios, g[i] / b[i]: each round
// of a side ran next to the same round of its baseline, so a burst of the
// shared machine's load that hits one round moves one ratio, not the
// figure.
func roundRatio(g, b []float64) float64 {
	var rs []float64
	for i := range min(len(g), len(b)) {
		if b[i] > 0 {
			rs = append(rs, g[i]/b[i])
		}
	}
	if len(rs) == 0 {
		return 0
	}
	return ratio(median(rs), 1)
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return float64(int64(a/b*1000+0.5)) / 1000
}

// compare measures gw next to base: full speed, then a fixed rate (half of
// the baseline's maximum, or of the slower side's when slowerRate; -share
// sets the share).
func compare(e *env, c config, name, what, baseline string, gw, base side, slowerRate bool) scenario {
	s := scenario{Name: name, What: what, Baseline: baseline}
	log.Printf("%s: warming up", name)
	interleave([]side{gw, base}, 1, 0, c.workers, time.Second)
	log.Printf("%s: full speed, %d rounds of %s per side", name, c.rounds, c.duration)
	runs := interleave([]side{gw, base}, c.rounds, 0, c.workers, c.duration)
	s.Max.Gateway, s.Max.Baseline = throughput(runs[0]), throughput(runs[1])
	s.Max.Ratio = roundRatio(s.Max.Gateway.Rounds, s.Max.Baseline.Rounds)
	s.Rate = int(s.Max.Baseline.Throughput * c.share)
	if slowerRate {
		s.Rate = int(min(s.Max.Baseline.Throughput, s.Max.Gateway.Throughput) * c.share)
	}
	s.Rate = max(s.Rate, 1)
	log.Printf("%s: %d/s, %d rounds of %s per side", name, s.Rate, c.rounds, c.duration)
	runs = interleave([]side{gw, base}, c.rounds, s.Rate, c.workers, c.duration)
	s.Fixed.Gateway, s.Fixed.Baseline = latency(runs[0]), latency(runs[1])
	s.Fixed.P50Ratio = roundRatio(s.Fixed.Gateway.P50s, s.Fixed.Baseline.P50s)
	s.Fixed.P99Ratio = roundRatio(s.Fixed.Gateway.P99s, s.Fixed.Baseline.P99s)
	if why := s.fixedInvalid(); why != "" {
		log.Printf("%s: the fixed-rate figures do not count: %s", name, why)
	}
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
	attack(gw.name, gw.tr, 0, c.workers, c.duration+time.Second, gw.ok, gw.rt)
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
		s.fixedTarget("p99 ratio at half of plain Caddy's max", s.Fixed.P99Ratio, "≤ 1.2", s.Fixed.P99Ratio <= 1.2),
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
	s.Targets = []target{{What: "throughput ratio", Value: s.Max.Ratio, Want: "≥ 0.92", Met: s.Max.Ratio >= 0.92}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// deviceBody is the small JSON body of B″'s PATCH.
const deviceBody = `{"name":"laptop-42","owner":"alice"}`

func (e *env) patch(base string) vegeta.Targeter {
	h := header(e.releaser, "Content-Type", "application/json")
	return targeter(func(n int64, t *vegeta.Target) {
		*t = vegeta.Target{Method: "PATCH", URL: fmt.Sprintf("%s/devices/%d", base, n%1000), Header: h, Body: []byte(deviceBody)}
	})
}

// scenarioB2 is an allowed PATCH whose small JSON body a short policy
// reads (bench/policies-body/body.rego), on a gateway of its own: the
// cost of reading and parsing the body for the policy.
func scenarioB2(e *env, c config) (scenario, error) {
	x, err := e.bodyGateway()
	if err != nil {
		return scenario{}, err
	}
	defer x.close()
	// The policy reads the body: the same PATCH setting wiped parks.
	a, err := doJSONBody("PATCH", x.url+"/devices/1", e.releaser, "CHG-2231 wipe a lost laptop", "application/json", []byte(`{"wiped":true}`))
	if err != nil || a.status != http.StatusAccepted {
		return scenario{}, fmt.Errorf("B″: a PATCH that sets wiped was not parked: %v %+v", err, a)
	}
	s := compare(e, c, "B″", "PATCH of a device with a small JSON body that the policy reads and allows (bench/policies-body/body.rego)",
		"plain Caddy reverse_proxy", side{name: "gateway", admin: x.admin, tr: e.patch(x.url), ok: 200}, side{name: "plain", admin: e.plainAdmin, tr: e.patch(e.plainURL), ok: 200}, true)
	s.Targets = []target{{What: "throughput ratio", Value: s.Max.Ratio, Want: "≥ 0.85", Met: s.Max.Ratio >= 0.85}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// parkTargeter parks DELETE /apps/{n}: a new resource per call, spread over
// the requesters so no one reaches the pending cap.
func (e *env) parkTargeter(base, prefix string) vegeta.Targeter {
	headers := make([]http.Header, len(e.requesters))
	for i, tok := range e.requesters {
		headers[i] = header(tok, "Approval-Justification", "CHG-2231 retire the old payroll client")
	}
	return targeter(func(n int64, t *vegeta.Target) {
		*t = vegeta.Target{Method: "DELETE", URL: fmt.Sprintf("%s/apps/%s-%d", base, prefix, n), Header: headers[n%int64(len(headers))]}
	})
}

func scenarioC(e *env, c config) (scenario, error) {
	return parks(e, c, "C", "DELETE that the policy parks: JWT + policy + one etcd transaction (embedded etcd)",
		"on the same etcd", side{name: "gateway", admin: e.gwAdmin}, e.gwURL, e.etcd)
}

// scenarioCExt is C on an etcd of its own process: the gateway's heap
// holds no etcd, so etcd's work and garbage collection are apart from it.
func scenarioCExt(e *env, c config) (scenario, error) {
	x, err := e.externalGateway("ext")
	if err != nil {
		return scenario{}, err
	}
	defer x.close()
	return parks(e, c, "C-ext", "the same DELETE, parked in an external etcd (a process of its own)",
		"on that external etcd", side{name: "gateway", admin: x.admin}, x.url, x.cli)
}

// parks compares parks through the gateway at base with raw etcd puts of
// the same size at the same concurrency on cli, its store.
func parks(e *env, c config, name, what, where string, gw side, base string, cli *clientv3.Client) (scenario, error) {
	// One park first, to size the raw puts like the stored request.
	resp, err := doJSON("DELETE", base+"/apps/"+strings.ToLower(name)+"-size", e.requesters[0], "CHG-2231 retire the old payroll client", nil)
	if err != nil || resp.status != http.StatusAccepted {
		return scenario{}, fmt.Errorf("%s: sizing park: %v %+v", name, err, resp)
	}
	size, err := storedSize(cli, resp.ID)
	if err != nil {
		return scenario{}, fmt.Errorf("%s: %w", name, err)
	}
	raw := side{name: "etcd", ok: http.StatusAccepted, rt: &etcdPuts{cli: cli, prefix: "/bench/raw/", value: strings.Repeat("x", size)},
		tr: targeter(func(_ int64, t *vegeta.Target) { *t = vegeta.Target{Method: "PUT", URL: "http://etcd/put"} })}
	gw.tr, gw.ok = e.parkTargeter(base, strings.ToLower(name)), http.StatusAccepted
	s := compare(e, c, name, what, fmt.Sprintf("raw etcd puts of %d bytes %s", size, where), gw, raw, true)
	s.Targets = []target{{What: "parks / raw puts", Value: s.Max.Ratio, Want: "≥ 0.50", Met: s.Max.Ratio >= 0.50}}
	s.Note = "fixed rate: half of the slower side's max"
	return s, nil
}

// storedSize is the bytes a park stored: the values of every key under
// /approvals/ that names the request (its record, its body, whatever
// else the store keeps for it), index keys without a value left out.
func storedSize(cli *clientv3.Client, id string) (int, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := cli.Get(ctx, "/approvals/", clientv3.WithPrefix())
	if err != nil {
		return 0, err
	}
	n := 0
	for _, kv := range resp.Kvs {
		n += valueSize(string(kv.Key), kv.Value, id)
	}
	if n == 0 {
		return 0, fmt.Errorf("nothing of request %s in the store", id)
	}
	return n, nil
}

// valueSize is what a key counts in a park's stored size: its value's
// size if the key names the request id, nothing for other keys and for
// index keys without a value.
func valueSize(key string, value []byte, id string) int {
	if id == "" || !strings.Contains(key, id) {
		return 0
	}
	return len(value)
}

type answer struct {
	status int
	ID     string `json:"id"`
	Status string `json:"status"`
}

var client = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 256}}

func doJSON(method, url, tok, justification string, body []byte) (answer, error) {
	return doJSONBody(method, url, tok, justification, "", body)
}

// doJSONBody is doJSON with a Content-Type for the body.
func doJSONBody(method, url, tok, justification, contentType string, body []byte) (answer, error) {
	req, err := http.NewRequest(method, url, bytes.NewReader(body))
	if err != nil {
		return answer{}, err
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
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
					b, err := doJSONBody("POST", api+a.ID+"/approve", approver, "", "application/json", []byte(`{"notes":"looks right"}`))
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
	client.CloseIdleConnections()
	s := scenario{Name: "D", What: fmt.Sprintf("whole lifecycle: park, approve (one or two approvers, as the policy asks at that hour), complete with replay; %d workers", workers), Baseline: "—"}
	s.Max.Gateway = summary{Throughput: round1(float64(len(latencies)) / elapsed.Seconds()), Requests: len(latencies) + int(failed.Load()),
		Failed: int(failed.Load()), Errors: failures, P50: quantile(latencies, 0.5), P99: quantile(latencies, 0.99)}
	s.Note = "lifecycles per second at full speed; p50/p99 of a whole lifecycle"
	return s, nil
}
