package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
