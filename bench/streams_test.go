package main

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
)

// The stream's events: the first is the retry interval alone; comments
// and blank lines between events are skipped; data lines are joined.
func TestReadEvent(t *testing.T) {
	text := "retry: 2000\n\n" +
		": a comment\n\n\n" +
		"id: 7-0\nevent: approval.request.parked\ndata: {\"request_id\":\"r1\"}\n\n" +
		"event: reset\r\ndata: a\r\ndata:b\r\n\r\n" +
		"id: 8-0\nevent: approval.request.approved"
	r := bufio.NewReader(strings.NewReader(text))
	want := []sseEvent{
		{Retry: 2000},
		{ID: "7-0", Type: eventParked, Data: `{"request_id":"r1"}`},
		{Type: "reset", Data: "a\nb"},
	}
	for i, w := range want {
		ev, err := readEvent(r)
		if err != nil || ev != w {
			t.Fatalf("event %d: %+v %v, want %+v", i, ev, err, w)
		}
	}
	if _, err := readEvent(r); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("an event cut short: %v", err)
	}
	if _, err := readEvent(bufio.NewReader(strings.NewReader("retry: 2000\n\n\n"))); err != nil {
		t.Fatal(err)
	}
	r = bufio.NewReader(strings.NewReader("retry: 2000\n\n\n"))
	_, _ = readEvent(r)
	if _, err := readEvent(r); err != io.EOF {
		t.Fatalf("the end between events: %v", err)
	}
}

// A gauge is read without labels or summed over them; metrics whose
// names begin with it and comments do not count.
func TestPromGauge(t *testing.T) {
	text := `# HELP etcd_debugging_mvcc_watcher_total Total number of watchers.
# TYPE etcd_debugging_mvcc_watcher_total gauge
etcd_debugging_mvcc_watcher_total 3
etcd_debugging_mvcc_watcher_total_other 100
etcd_debugging_mvcc_slow_watcher_total 1
grpc_server_started_total{grpc_method="Watch",grpc_type="bidi_stream"} 2
grpc_server_started_total{grpc_method="Range",grpc_type="unary"} 1e+03
`
	if v, ok := promGauge(text, watcherMetric); !ok || v != 3 {
		t.Fatalf("watchers: %v %v", v, ok)
	}
	if v, ok := promGauge(text, "grpc_server_started_total"); !ok || v != 1002 {
		t.Fatalf("summed over labels: %v %v", v, ok)
	}
	if _, ok := promGauge(text, "etcd_debugging_mvcc_watch_stream_total"); ok {
		t.Fatal("a missing gauge found")
	}
}

// Memory per stream is the RSS difference over the connected streams;
// every target needs all streams connected and the event received by all.
func TestStreamsJudge(t *testing.T) {
	s := streamsResult{Streams: 1000, Connected: 1000, WatchersBefore: 3, WatchersWith: 3,
		RSSBefore: 40 << 20, RSSWith: 40<<20 + 1000*30*1024, Received: 1000}
	s.judge()
	if s.KiBPerStream != 30 {
		t.Fatalf("KiB per stream: %v", s.KiBPerStream)
	}
	for _, g := range s.Targets {
		if !g.Met {
			t.Fatalf("not met: %+v", g)
		}
	}
	s.WatchersWith, s.RSSWith, s.Received = 1003, 40<<20+1000*65*1024, 999
	s.judge()
	for _, g := range s.Targets {
		if g.Met {
			t.Fatalf("met: %+v", g)
		}
	}
	if s.Targets[0].Value != 1000 || s.Targets[2].Value != 999 {
		t.Fatalf("targets %+v", s.Targets)
	}
	s = streamsResult{Streams: 1000, Connected: 900, WatchersBefore: 3, WatchersWith: 3, RSSBefore: 1 << 20, RSSWith: 1 << 20, Received: 900}
	s.judge()
	if s.Targets[0].Met || s.Targets[1].Met {
		t.Fatalf("met with streams missing: %+v", s.Targets)
	}
	var none streamsResult
	none.judge()
	for _, g := range none.Targets {
		if g.Met || none.KiBPerStream != 0 {
			t.Fatalf("met with no stream: %+v", none)
		}
	}
}

func TestThousands(t *testing.T) {
	for n, want := range map[int]string{0: "0", 999: "999", 1000: "1,000", 1234567: "1,234,567", -1000: "-1,000"} {
		if got := thousands(n); got != want {
			t.Fatalf("%d: %q", n, got)
		}
	}
}

// S is a paragraph in results.md and a row of the table.
func TestStreamsReported(t *testing.T) {
	s := &streamsResult{Store: "etcd", Streams: 1000, Connected: 1000, WatchersBefore: 3, WatchersWith: 3, WatchersAfter: 3,
		RSSBefore: 40 << 20, RSSWith: 70 << 20, Received: 1000, DeliveryP50: 12.5, DeliveryMax: 40}
	s.judge()
	r := results{Streams: s}
	md := r.markdown()
	for _, want := range []string{"S: 1,000 event streams", "before 3, with the streams 3 (added by the streams: 0, want 0: met",
		"without streams 40.0 MiB, with 1,000 70.0 MiB: 30.7 KiB per stream (want ≤ 64 KiB: met)", "p50 12.5 ms, max 40.0 ms; received by 1,000 of 1,000 (met)",
		"| S: 1,000 event streams on one gateway", "etcd watchers added by the streams 0, want = 0: met"} {
		if !strings.Contains(md, want) {
			t.Fatalf("results.md lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains((results{}).markdown(), "event streams") {
		t.Fatal("S reported when it did not run")
	}
}
