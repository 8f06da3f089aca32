package main

import (
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
)

func TestQuantileAndMedian(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- { // 1..100 ms, unsorted
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	if q := quantile(ds, 0.99); q != 99 {
		t.Fatalf("p99 of 1..100 ms: %v", q)
	}
	if q := quantile(ds, 0.50); q != 50 {
		t.Fatalf("p50 of 1..100 ms: %v", q)
	}
	if q := quantile(nil, 0.99); q != 0 {
		t.Fatalf("p99 of nothing: %v", q)
	}
	if m := median([]float64{9, 1, 5}); m != 5 {
		t.Fatalf("median: %v", m)
	}
	if m := median([]float64{4, 1, 2, 3}); m != 2.5 {
		t.Fatalf("median of four: %v", m)
	}
}

// Throughput counts only successful calls over the time all rounds took;
// latency figures are medians of the rounds' own quantiles.
func TestRoundsAggregate(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		var out []time.Duration
		for _, n := range ns {
			out = append(out, time.Duration(n)*time.Millisecond)
		}
		return out
	}
	runs := []run{
		{Requests: 110, OK: 100, Elapsed: time.Second, Latencies: ms(1, 2, 3)},
		{Requests: 300, OK: 300, Elapsed: time.Second, Latencies: ms(10, 20, 30)},
		{Requests: 200, OK: 200, Elapsed: 2 * time.Second, Latencies: ms(100, 200, 300)},
	}
	s := throughput(runs)
	if s.Throughput != 150 || s.Failed != 10 || len(s.Rounds) != 3 || s.Rounds[0] != 100 {
		t.Fatalf("throughput %+v", s)
	}
	l := latency(runs)
	if l.P99 != 30 || l.P50 != 20 || l.P99All != 300 {
		t.Fatalf("latency %+v", l)
	}
	if r := ratio(95, 100); r != 0.95 {
		t.Fatalf("ratio %v", r)
	}
}

// The README's table is replaced between its markers and nowhere else.
func TestUpdateReadme(t *testing.T) {
	path := filepath.Join(t.TempDir(), "README.md")
	before, after := "# Title\n\ntext\n\n", "\nmore text\n"
	if err := os.WriteFile(path, []byte(before+readmeBegin+"old table\n"+readmeEnd+after), 0o644); err != nil {
		t.Fatal(err)
	}
	r := results{Command: "go run ./bench", Date: "2026-11-22T03:00:00Z", Machine: machineInfo{Cores: 2, CPU: "cpu"},
		Scenarios: []scenario{{Name: "A", What: "GET", Baseline: "plain", Targets: []target{{What: "throughput ratio", Value: 0.97, Want: "≥ 0.95", Met: true}}}}}
	for range 2 { // twice: the markers stay
		if err := r.updateReadme(path); err != nil {
			t.Fatal(err)
		}
	}
	b, _ := os.ReadFile(path)
	text := string(b)
	if !strings.HasPrefix(text, before+readmeBegin) || !strings.HasSuffix(text, readmeEnd+after) ||
		strings.Contains(text, "old table") || strings.Count(text, "| A: GET |") != 1 || !strings.Contains(text, "want ≥ 0.95: met") {
		t.Fatalf("README after update:\n%s", text)
	}
	if err := os.WriteFile(path, []byte("no markers\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := r.updateReadme(path); err == nil {
		t.Fatal("a README without markers was accepted")
	}
}

// A fixed-rate round counts only if it sent and answered at least 95 % of
// the asked rate without failures; full-speed rounds always count. One
// invalid round makes the side invalid, with the worst round's figure.
func TestAchievedRate(t *testing.T) {
	ok := run{Asked: 1000, Duration: 5 * time.Second, Requests: 5000, OK: 5000, Elapsed: 5010 * time.Millisecond}
	if why := ok.invalid(); why != "" {
		t.Fatalf("a round at the asked rate: %s", why)
	}
	if sent, answered := ok.achieved(); sent != 1000 || answered < 997 || answered > 999 {
		t.Fatalf("achieved %v sent, %v answered", sent, answered)
	}
	behind := run{Asked: 1000, Duration: 5 * time.Second, Requests: 4000, OK: 4000, Elapsed: 5 * time.Second}
	if why := behind.invalid(); why != "achieved 800/s of 1000/s asked" {
		t.Fatalf("a round at 80 %%: %q", why)
	}
	slow := run{Asked: 1000, Duration: 5 * time.Second, Requests: 5000, OK: 5000, Elapsed: 6 * time.Second}
	if why := slow.invalid(); why != "achieved 833/s of 1000/s asked" {
		t.Fatalf("a round answered over 6 s: %q", why)
	}
	failed := run{Asked: 1000, Duration: 5 * time.Second, Requests: 5000, OK: 4999, Elapsed: 5 * time.Second}
	if why := failed.invalid(); !strings.Contains(why, "1 of 5000 calls failed") {
		t.Fatalf("a round with a failure: %q", why)
	}
	full := run{Duration: 5 * time.Second, Requests: 10, OK: 5, Elapsed: 9 * time.Second}
	if why := full.invalid(); why != "" {
		t.Fatalf("a full-speed round: %q", why)
	}

	s := latency([]run{ok, behind, ok})
	if s.Invalid != "achieved 800/s of 1000/s asked (round 2 of 3)" || s.Asked != 1000 || len(s.Sent) != 3 || s.Sent[1] != 800 || len(s.OKRate) != 3 {
		t.Fatalf("latency of rounds, one behind: %+v", s)
	}
	if s := latency([]run{ok, ok}); s.Invalid != "" {
		t.Fatalf("latency of valid rounds: %q", s.Invalid)
	}

	// In the report: no latency figures, the target on them not met.
	var sc scenario
	sc.Name, sc.What, sc.Baseline, sc.Rate = "A", "GET", "plain", 1000
	sc.Fixed.Gateway, sc.Fixed.Baseline = latency([]run{ok, ok}), latency([]run{ok, behind, ok})
	sc.Fixed.Gateway.P99, sc.Fixed.Baseline.P99, sc.Fixed.P99Ratio = 12.5, 10, 1.25
	sc.Fixed.Gateway.P50, sc.Fixed.Baseline.P50 = 4.25, 3.75
	tg := sc.fixedTarget("p99 ratio", 1.0, "≤ 1.2", true)
	if tg.Met || !strings.Contains(tg.Invalid, "baseline achieved 800/s of 1000/s asked") {
		t.Fatalf("target on an invalid phase: %+v", tg)
	}
	sc.Targets = []target{tg}
	table := results{Scenarios: []scenario{sc}}.table()
	if !strings.Contains(table, "invalid: baseline achieved 800/s of 1000/s asked") || strings.Contains(table, "12.50") ||
		strings.Contains(table, "4.25") || !strings.Contains(table, "**missed**") {
		t.Fatalf("table with an invalid phase:\n%s", table)
	}
	if line := sc.line(); !strings.Contains(line, "invalid: baseline achieved 800/s") || strings.Contains(line, "12.50") {
		t.Fatalf("line with an invalid phase: %s", line)
	}
	if tg := sc.fixedTarget("p99 ratio", 1.0, "≤ 1.2", true); tg.Invalid == "" {
		t.Fatal("no reason")
	}
	sc.Fixed.Baseline = latency([]run{ok})
	if tg := sc.fixedTarget("p99 ratio", 1.0, "≤ 1.2", true); !tg.Met || tg.Invalid != "" {
		t.Fatalf("target on a valid phase: %+v", tg)
	}
}

// Every attack is bounded: at full speed workers, at a fixed rate twice
// as many, in flight and in connections.
func TestAttackBounded(t *testing.T) {
	if i, m := bounds(0, 32); i != 32 || m != 32 {
		t.Fatalf("full speed: %d, %d", i, m)
	}
	if i, m := bounds(500, 32); i != 32 || m != 64 {
		t.Fatalf("fixed rate: %d, %d", i, m)
	}
	var mu sync.Mutex
	var inflight, most, conns int
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		inflight++
		most = max(most, inflight)
		mu.Unlock()
		time.Sleep(20 * time.Millisecond) // 50/s per connection at most
		mu.Lock()
		inflight--
		mu.Unlock()
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			mu.Lock()
			conns++
			mu.Unlock()
		}
	}
	srv.Start()
	defer srv.Close()
	tr := targeter(func(_ int64, t *vegeta.Target) { *t = vegeta.Target{Method: "GET", URL: srv.URL} })
	for _, c := range []struct {
		rate    int
		workers uint64
	}{{0, 3}, {1000, 2}} {
		mu.Lock()
		most, conns = 0, 0
		mu.Unlock()
		r := attack("bounded", tr, c.rate, c.workers, 300*time.Millisecond, 200, nil)
		_, bound := bounds(c.rate, c.workers)
		mu.Lock()
		if most > int(bound) || conns > int(bound) || most == 0 {
			t.Errorf("rate %d, workers %d: %d in flight, %d connections (bound %d)", c.rate, c.workers, most, conns, bound)
		}
		mu.Unlock()
		// 4 connections of at most 50/s each cannot send 1000/s: invalid.
		if c.rate > 0 && !strings.HasPrefix(r.invalid(), "achieved ") {
			t.Errorf("a rate the bounded attack cannot reach: %q (%d sent)", r.invalid(), r.Requests)
		}
	}
}

// Two runs' ratios: within ±10 % of the previous when now / before - 1 is;
// an invalid figure is not within; a new scenario is listed, not compared.
func TestCompareWithPrevious(t *testing.T) {
	sc := func(name string, max, p50, p99 float64, invalid string) scenario {
		var s scenario
		s.Name = name
		s.Max.Ratio, s.Fixed.P50Ratio, s.Fixed.P99Ratio = max, p50, p99
		s.Fixed.Gateway.Invalid = invalid
		return s
	}
	prev := results{Date: "before", Command: "go run ./bench", Scenarios: []scenario{
		sc("A", 1.0, 1.0, 1.0, ""), sc("B", 0.8, 2, 3, ""), sc("D", 0, 0, 0, "")},
		Memory: memoryResult{Targets: []target{{What: "RSS", Value: 1.0}}}}
	now := results{Scenarios: []scenario{
		sc("A", 1.1, 0.9, 1.111, ""), sc("B", 0.72, 2, 3, "achieved 1/s of 2/s asked"), sc("B″", 0.9, 1, 1, ""), sc("D", 0, 0, 0, "")},
		Memory: memoryResult{Targets: []target{{What: "RSS", Value: 1.05}}}}
	a := now.compareWith(prev)
	got := map[string]drift{}
	for _, d := range a.Ratios {
		got[d.Scenario+" "+d.What] = d
	}
	for key, want := range map[string]bool{
		"A throughput ratio": true, "A p50 ratio at the fixed rate": true, "A p99 ratio at the fixed rate": false,
		"B throughput ratio": true, "B p99 ratio at the fixed rate": false, "memory RSS": true,
	} {
		if d, ok := got[key]; !ok || d.Within != want {
			t.Errorf("%s: %+v, want within %v", key, d, want)
		}
	}
	if d := got["B p99 ratio at the fixed rate"]; d.Note != "invalid now" {
		t.Errorf("invalid figure: %+v", d)
	}
	if d := got["B″ throughput ratio"]; d.Note != "not in the previous run" || d.Within {
		t.Errorf("new scenario: %+v", d)
	}
	if _, ok := got["D throughput ratio"]; ok {
		t.Error("D has no ratio")
	}
	// A: 3 ratios, B: 3, memory: 1 compared; B″ not.
	if a.Compared != 7 || a.Within != 4 || len(a.Ratios) != 10 {
		t.Errorf("compared %d, within %d, rows %d", a.Compared, a.Within, len(a.Ratios))
	}
	now.Previous = a
	md := now.markdown()
	if !strings.Contains(md, "## Against the previous run") || !strings.Contains(md, "4 of 7 ratios within ±10 %") ||
		!strings.Contains(md, "| A | throughput ratio | 1.000 | 1.100 | +10.0 % | yes |") ||
		!strings.Contains(md, "| A | p99 ratio at the fixed rate | 1.000 | 1.111 | +11.1 % | **no** |") {
		t.Errorf("markdown:\n%s", md)
	}
	if md := (results{}).markdown(); !strings.Contains(md, "## Against the previous run\n\nNo previous results.json") {
		t.Errorf("markdown without a previous run:\n%s", md)
	}
}

// A park's stored size is every value whose key names the request.
func TestValueSize(t *testing.T) {
	n := 0
	for _, kv := range []struct{ key, value string }{
		{"/approvals/requests/r-1", "record"},
		{"/approvals/payloads/r-1", "body"},
		{"/approvals/index/pending/alice/r-1", ""}, // an index key without a value
		{"/approvals/requests/r-2", "another request"},
	} {
		n += valueSize(kv.key, []byte(kv.value), "r-1")
	}
	if n != len("record")+len("body") {
		t.Fatalf("stored size %d", n)
	}
	if valueSize("/approvals/requests/r-1", []byte("x"), "") != 0 {
		t.Fatal("an empty id matched")
	}
}

// The ratio of a comparison is the median of its rounds' ratios: one round
// hit by a burst of load moves it little, where the ratio of the sums
// moves with it.
func TestRoundRatio(t *testing.T) {
	g := []float64{800, 810, 400, 790, 805}     // round 3 hit on the gateway's side
	b := []float64{1000, 1000, 1000, 1000, 990} // the baseline's rounds
	if got := roundRatio(g, b); got != 0.8 {
		t.Fatalf("median of the rounds' ratios %v, want 0.8", got)
	}
	if got := roundRatio(nil, b); got != 0 {
		t.Fatalf("no rounds: %v", got)
	}
	if got := roundRatio([]float64{5}, []float64{0}); got != 0 {
		t.Fatalf("a baseline round of 0: %v", got)
	}
}
