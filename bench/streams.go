package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Scenario S: many event streams (GET {prefix}/api/v1/events, server-sent
// events) on one gateway. The gateway serves every stream from its one
// audit feed, so etcd sees no more watches from it with the streams than
// without, and each stream costs the gateway bounded memory.

const (
	// streamCount is how many event streams S opens on one gateway.
	streamCount = 1000
	// maxKiBPerStream bounds the gateway's memory per open stream: each
	// holds a 64-item channel of the audit feed, a goroutine and its HTTP
	// connection's buffers.
	maxKiBPerStream = 64
	// eventParked is the event type of a park (record.EventParked in the
	// gateway's module, which this one does not import).
	eventParked = "approval.request.parked"
	// watcherMetric is etcd's gauge of the watchers it serves.
	watcherMetric = "etcd_debugging_mvcc_watcher_total"
	// eventsPath is the event stream of the gateway's API.
	eventsPath = "/.approvals/api/v1/events"
)

// streamsResult is what S measured.
type streamsResult struct {
	Store   string `json:"store"`
	Streams int    `json:"streams"`
	// Connected streams had read the stream's first bytes ("retry: …").
	Connected int `json:"connected"`
	// etcd's etcd_debugging_mvcc_watcher_total: before any stream (the
	// gateway's own watches), with the streams open, after they closed.
	WatchersBefore int `json:"etcd_watchers_before"`
	WatchersWith   int `json:"etcd_watchers_with_streams"`
	WatchersAfter  int `json:"etcd_watchers_after"`
	// The gateway's RSS without a stream and with the streams open (2 s
	// after the last connected), and the difference per stream.
	RSSBefore    int64   `json:"rss_without_streams_bytes"`
	RSSWith      int64   `json:"rss_with_streams_bytes"`
	KiBPerStream float64 `json:"rss_per_stream_kib"`
	// The gateway's open files (sockets among them) without, with and
	// after the streams.
	FDsBefore int `json:"gateway_fds_before"`
	FDsWith   int `json:"gateway_fds_with_streams"`
	FDsAfter  int `json:"gateway_fds_after"`
	// One park through the gateway: its own time, and from its request
	// being sent until each stream had its event.
	ParkMs      float64 `json:"park_ms"`
	Received    int     `json:"received"`
	DeliveryP50 float64 `json:"delivery_p50_ms"`
	DeliveryMax float64 `json:"delivery_max_ms"`
	// Errors are the first failures of streams (at most 5).
	Errors  []string `json:"errors,omitempty"`
	Targets []target `json:"targets"`
}

// judge works out the memory per stream and the targets.
func (s *streamsResult) judge() {
	all := s.Connected == s.Streams && s.Streams > 0
	s.KiBPerStream = 0
	if s.Connected > 0 {
		s.KiBPerStream = math.Round(float64(s.RSSWith-s.RSSBefore)/float64(s.Connected)/1024*10) / 10
	}
	added := s.WatchersWith - s.WatchersBefore
	s.Targets = []target{
		{What: "etcd watchers added by the streams", Value: float64(added), Want: "= 0", Met: all && added == 0},
		{What: "gateway memory per stream, KiB", Value: s.KiBPerStream, Want: fmt.Sprintf("≤ %d", maxKiBPerStream), Met: all && s.KiBPerStream <= maxKiBPerStream},
		{What: "streams that received the event", Value: float64(s.Received), Want: fmt.Sprintf("= %d", s.Streams), Met: s.Streams > 0 && s.Received == s.Streams},
	}
}

func (s streamsResult) line() string {
	t := ""
	for _, g := range s.Targets {
		t += fmt.Sprintf("; %s %s (want %s: %v)", g.What, strconv.FormatFloat(g.Value, 'f', -1, 64), g.Want, g.Met)
	}
	return fmt.Sprintf("S: %d of %d streams; etcd watchers %d → %d → %d; RSS %.1f → %.1f MiB; open files %d → %d → %d; park %.1f ms; delivery p50 %.1f ms, max %.1f ms, to %d%s",
		s.Connected, s.Streams, s.WatchersBefore, s.WatchersWith, s.WatchersAfter, mb(s.RSSBefore), mb(s.RSSWith),
		s.FDsBefore, s.FDsWith, s.FDsAfter, s.ParkMs, s.DeliveryP50, s.DeliveryMax, s.Received, t)
}

// paragraph is S in results.md.
func (s streamsResult) paragraph() string {
	var b strings.Builder
	n := thousands(s.Streams)
	fmt.Fprintf(&b, "S: %s event streams (`GET %s`, each on a connection of its own, each as a different approver) on one gateway (store: %s)", n, eventsPath, s.Store)
	if s.Connected != s.Streams {
		fmt.Fprintf(&b, "; only %s connected", thousands(s.Connected))
	}
	fmt.Fprintf(&b, ": etcd watchers (`%s`) before %d, with the streams %d (added by the streams: %d, want 0: %s; the gateway's own watches exist before any stream), after closing them %d; ",
		watcherMetric, s.WatchersBefore, s.WatchersWith, s.WatchersWith-s.WatchersBefore, yes(s.targetMet(0)), s.WatchersAfter)
	fmt.Fprintf(&b, "gateway RSS without streams %.1f MiB, with %s %.1f MiB: %.1f KiB per stream (want ≤ %d KiB: %s); ",
		mb(s.RSSBefore), n, mb(s.RSSWith), s.KiBPerStream, maxKiBPerStream, yes(s.targetMet(1)))
	fmt.Fprintf(&b, "delivery of one event (a park, %.1f ms itself) to all %s, from the park's request being sent: p50 %.1f ms, max %.1f ms; received by %s of %s (%s). ",
		s.ParkMs, n, s.DeliveryP50, s.DeliveryMax, thousands(s.Received), n, yes(s.targetMet(2)))
	fmt.Fprintf(&b, "The gateway's open files: %d without streams, %d with them, %d after they closed.", s.FDsBefore, s.FDsWith, s.FDsAfter)
	if len(s.Errors) > 0 {
		fmt.Fprintf(&b, " Stream errors: %s.", strings.Join(s.Errors, "; "))
	}
	b.WriteString("\n")
	return b.String()
}

func (s streamsResult) targetMet(i int) bool { return i < len(s.Targets) && s.Targets[i].Met }

func mb(b int64) float64 { return float64(b) / (1 << 20) }

// thousands renders n with commas between groups of three digits.
func thousands(n int) string {
	s := strconv.Itoa(n)
	sign := ""
	if n < 0 {
		sign, s = "-", s[1:]
	}
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return sign + s
}

// sseEvent is one server-sent event, its fields as the stream gave them.
type sseEvent struct {
	ID, Type, Data string
	Retry          int // ms; 0 when not given
}

// readEvent reads the next event of a text/event-stream: field lines up
// to a blank line. Comments (":…") are skipped; several data lines are
// joined with "\n"; a block with a retry field only is an event too (a
// stream's first). At the end of the stream it returns io.EOF between
// events and io.ErrUnexpectedEOF within one.
func readEvent(r *bufio.Reader) (sseEvent, error) {
	var ev sseEvent
	var data []string
	seen := false
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			if errors.Is(err, io.EOF) && (seen || line != "") {
				return ev, io.ErrUnexpectedEOF
			}
			return ev, err
		}
		line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
		switch {
		case line == "":
			if seen {
				ev.Data = strings.Join(data, "\n")
				return ev, nil
			}
			continue // between events, or after a comment
		case strings.HasPrefix(line, ":"):
			continue
		}
		seen = true
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "id":
			ev.ID = value
		case "event":
			ev.Type = value
		case "data":
			data = append(data, value)
		case "retry":
			ev.Retry, _ = strconv.Atoi(value)
		}
	}
}

// promGauge is the value of the sample name in a Prometheus text
// exposition (summed over its label sets, if it has some); false if there
// is none.
func promGauge(text, name string) (float64, bool) {
	sum, found := 0.0, false
	for _, line := range strings.Split(text, "\n") {
		rest, ok := strings.CutPrefix(strings.TrimSpace(line), name)
		if !ok || rest == "" || (rest[0] != ' ' && rest[0] != '{') {
			continue // a comment, another metric or one whose name begins so
		}
		if rest[0] == '{' {
			i := strings.LastIndexByte(rest, '}')
			if i < 0 {
				continue
			}
			rest = rest[i+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			continue
		}
		sum, found = sum+v, true
	}
	return sum, found
}

var metricsClient = &http.Client{Timeout: 5 * time.Second}

// etcdGauge reads the gauge name from the Prometheus metrics at url.
func etcdGauge(url, name string) (float64, error) {
	resp, err := metricsClient.Get(url)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return 0, err
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("%s: %s", url, resp.Status)
	}
	v, ok := promGauge(string(b), name)
	if !ok {
		return 0, fmt.Errorf("%s: no %s", url, name)
	}
	return v, nil
}

// steady reads a figure until it gives the same value four times in a row,
// 250 ms apart, for at most d, and returns the last value.
func steady(d time.Duration, read func() (float64, error)) (float64, error) {
	deadline := time.Now().Add(d)
	last, same := math.NaN(), 0
	for {
		v, err := read()
		if err != nil {
			return 0, err
		}
		if v == last {
			same++
		} else {
			last, same = v, 1
		}
		if same == 4 || time.Now().After(deadline) {
			return last, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// stream is an open event stream.
type stream struct {
	body io.ReadCloser
	r    *bufio.Reader
}

// openStream opens the event stream at url as tok and reads its first
// event (the stream's retry interval).
func openStream(ctx context.Context, cl *http.Client, url, tok string) (*stream, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", url, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := cl.Do(req)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream") {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 200))
		resp.Body.Close()
		return nil, fmt.Errorf("event stream: %s %s %q", resp.Status, resp.Header.Get("Content-Type"), b)
	}
	st := &stream{body: resp.Body, r: bufio.NewReader(resp.Body)}
	ev, err := readEvent(st.r)
	if err == nil && ev.Retry == 0 {
		err = fmt.Errorf("event stream: first event %+v, not a retry interval", ev)
	}
	if err != nil {
		st.body.Close()
		return nil, err
	}
	return st, nil
}

// scenarioS opens streamCount event streams on a gateway on an etcd of
// its own process, whose /metrics count the watches it serves: etcd's
// watchers and the gateway's RSS before and with the streams, then one
// park and how long its event takes to reach every stream; the streams
// are closed, and their connections gone, before it returns.
func scenarioS(e *env) (*streamsResult, error) {
	s := &streamsResult{Store: "etcd as a separate process (one member)", Streams: streamCount}
	x, err := e.externalGateway("streams")
	if err != nil {
		return nil, err
	}
	defer x.close()
	metrics := x.endpoint + "/metrics"
	watchers := func() (float64, error) { return etcdGauge(metrics, watcherMetric) }
	events := x.url + eventsPath
	tr := &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second}).DialContext,
		MaxConnsPerHost:     streamCount + 1,
		MaxIdleConnsPerHost: streamCount + 1,
		DisableCompression:  true,
		// Only until the headers: a stream's body has no deadline.
		ResponseHeaderTimeout: 30 * time.Second,
	}
	defer tr.CloseIdleConnections()
	cl := &http.Client{Transport: tr}
	tokens := make([]string, streamCount)
	for i := range tokens {
		tokens[i] = token(fmt.Sprintf("stream-approver-%d", i), "app-approvers")
	}

	// One stream opened and closed first: the handler's path is warm and
	// the audit feed follows the log before anything is counted.
	warm, err := openStream(context.Background(), cl, events, tokens[0])
	if err != nil {
		return nil, fmt.Errorf("S: %w", err)
	}
	warm.body.Close()
	n, err := steady(10*time.Second, watchers)
	if err != nil {
		return nil, fmt.Errorf("S: %w", err)
	}
	s.WatchersBefore = int(n)
	if s.FDsBefore, err = x.gw.fds(); err != nil {
		return nil, err
	}
	if s.RSSBefore, err = x.gw.rss(); err != nil {
		return nil, err
	}

	log.Printf("S: opening %d event streams", streamCount)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type delivery struct {
		at   time.Time
		data string
	}
	var (
		wg                          sync.WaitGroup
		connected, failed, received atomic.Int64
		mu                          sync.Mutex
		first                       = make([]*delivery, streamCount)
	)
	fail := func(err string) {
		mu.Lock()
		if len(s.Errors) < 5 {
			s.Errors = append(s.Errors, err)
		}
		mu.Unlock()
	}
	opening := make(chan struct{}, 100) // connections being opened at once
	for i := range streamCount {
		wg.Go(func() {
			opening <- struct{}{}
			st, err := openStream(ctx, cl, events, tokens[i])
			<-opening
			if err != nil {
				failed.Add(1)
				if ctx.Err() == nil {
					fail(fmt.Sprintf("stream %d: %v", i, err))
				}
				return
			}
			defer st.body.Close()
			connected.Add(1)
			for {
				ev, err := readEvent(st.r)
				if err != nil {
					if ctx.Err() == nil {
						fail(fmt.Sprintf("stream %d ended: %v", i, err))
					}
					return
				}
				if ev.Type != eventParked {
					continue
				}
				at := time.Now()
				mu.Lock()
				if first[i] == nil {
					first[i] = &delivery{at: at, data: ev.Data}
					received.Add(1)
				}
				mu.Unlock()
			}
		})
	}
	closeAll := func() {
		cancel()
		wg.Wait()
		tr.CloseIdleConnections()
	}
	deadline := time.Now().Add(2 * time.Minute)
	for connected.Load()+failed.Load() < streamCount && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	s.Connected = int(connected.Load())
	log.Printf("S: %d streams connected, %d failed; settling", s.Connected, failed.Load())
	time.Sleep(2 * time.Second)
	if s.RSSWith, err = x.gw.rss(); err == nil {
		s.FDsWith, err = x.gw.fds()
	}
	if err == nil {
		n, err = steady(10*time.Second, watchers)
		s.WatchersWith = int(n)
	}
	if err != nil {
		closeAll()
		return nil, fmt.Errorf("S: %w", err)
	}

	t0 := time.Now()
	a, err := doJSON("DELETE", x.url+"/apps/s-1", e.requesters[0], "CHG-2231 retire the old payroll client", nil)
	s.ParkMs = float64(time.Since(t0).Microseconds()) / 1000
	if err != nil || a.status != http.StatusAccepted {
		closeAll()
		return nil, fmt.Errorf("S: park: %v %+v", err, a)
	}
	deadline = time.Now().Add(30 * time.Second)
	for received.Load() < connected.Load() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	mu.Lock()
	var took []time.Duration
	for _, d := range first {
		if d != nil && strings.Contains(d.data, a.ID) {
			took = append(took, d.at.Sub(t0))
		}
	}
	mu.Unlock()
	s.Received = len(took)
	s.DeliveryP50, s.DeliveryMax = quantile(took, 0.5), quantile(took, 1)

	log.Printf("S: closing the streams")
	closeAll()
	// The connections are gone when the gateway's open files are back to
	// about what they were without a stream.
	deadline = time.Now().Add(30 * time.Second)
	for {
		s.FDsAfter, err = x.gw.fds()
		if err != nil || s.FDsAfter <= s.FDsBefore+10 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err == nil && s.FDsAfter > s.FDsBefore+10 {
		fail(fmt.Sprintf("the gateway still had %d files open 30 s after the streams closed (%d before)", s.FDsAfter, s.FDsBefore))
	}
	if n, err = steady(10*time.Second, watchers); err == nil {
		s.WatchersAfter = int(n)
	}
	s.judge()
	return s, nil
}
