package main

import (
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// run is what one attack measured.
type run struct {
	// Asked is the fixed rate per second (0: full speed); Duration the
	// time vegeta sent requests for.
	Asked     int
	Duration  time.Duration
	Requests  int
	OK        int
	Elapsed   time.Duration   // until the last answer
	Latencies []time.Duration // of the successful calls
	Codes     map[string]int
	Errors    []string
}

// minAchieved is the share of the asked rate a fixed-rate round must
// reach for its latencies to count: below it the generator or the server
// fell behind and the latencies describe a lighter load than asked.
const minAchieved = 0.95

// achieved is what a round reached: requests sent per second of the time
// vegeta sent them, and successful calls per second of the time the round
// took (until the last answer).
func (r run) achieved() (sent, ok float64) {
	if r.Duration > 0 {
		sent = float64(r.Requests) / r.Duration.Seconds()
	}
	if r.Elapsed > 0 {
		ok = float64(r.OK) / r.Elapsed.Seconds()
	}
	return sent, ok
}

// invalid says why a fixed-rate round's latencies do not count: it sent or
// answered less than minAchieved of the asked rate, or calls failed. It is
// "" for a valid round and for every full-speed round.
func (r run) invalid() string {
	if r.Asked == 0 {
		return ""
	}
	sent, ok := r.achieved()
	got := min(sent, ok)
	switch {
	case r.OK < r.Requests:
		return fmt.Sprintf("achieved %.0f/s of %d/s asked, %d of %d calls failed", got, r.Asked, r.Requests-r.OK, r.Requests)
	case got < minAchieved*float64(r.Asked):
		return fmt.Sprintf("achieved %.0f/s of %d/s asked", got, r.Asked)
	}
	return ""
}

// bounds returns the initial and the maximum number of workers of an
// attack, which are also its connections per host. At full speed both
// are workers. At a fixed rate (half of a maximum measured with workers
// connections) Little's law needs about half of them in flight; twice
// workers leaves room for latencies four times those at full speed, and
// a load that needs more is one the server no longer keeps up with: the
// attack then falls behind the rate and the round is reported invalid,
// instead of opening connections without bound.
func bounds(rate int, workers uint64) (initial, most uint64) {
	workers = max(workers, 1)
	if rate == 0 {
		return workers, workers
	}
	return workers, 2 * workers
}

// attack drives tr for d: at full speed with workers connections when rate
// is 0, else at rate per second with at most 2×workers (see bounds). rt,
// when not nil, carries the calls instead of HTTP (a baseline that is not
// HTTP). ok is the status that counts as success. Everything the attack
// opened is closed when it returns: the attacker is stopped and the
// idle connections of its transport are closed.
func attack(name string, tr vegeta.Targeter, rate int, workers uint64, d time.Duration, ok int, rt http.RoundTripper) run {
	initial, most := bounds(rate, workers)
	closeIdle := func() {}
	if rt == nil {
		t := newTransport(int(most))
		rt, closeIdle = t, t.CloseIdleConnections
	}
	a := vegeta.NewAttacker(vegeta.Workers(initial), vegeta.MaxWorkers(most),
		vegeta.Client(&http.Client{Transport: rt, Timeout: 30 * time.Second}))
	defer closeIdle()
	defer a.Stop()
	pacer := vegeta.Pacer(vegeta.Rate{Freq: rate, Per: time.Second})
	if rate == 0 {
		pacer = vegeta.Rate{}
	}
	r := run{Asked: rate, Duration: d, Codes: map[string]int{}}
	seen := map[string]bool{}
	begin := time.Now()
	for res := range a.Attack(tr, pacer, d, name) {
		r.Requests++
		if int(res.Code) == ok && res.Error == "" {
			r.OK++
			r.Latencies = append(r.Latencies, res.Latency)
		}
		r.Codes[fmt.Sprint(res.Code)]++
		if res.Error != "" && !seen[res.Error] && len(r.Errors) < 5 {
			seen[res.Error] = true
			r.Errors = append(r.Errors, res.Error)
		} else if int(res.Code) != ok && res.Code != 0 && !seen[string(res.Body)] && len(r.Errors) < 5 {
			seen[string(res.Body)] = true
			r.Errors = append(r.Errors, fmt.Sprintf("%d %s", res.Code, strings.TrimSpace(string(res.Body))))
		}
	}
	r.Elapsed = time.Since(begin)
	return r
}

// newTransport is an HTTP transport of at most conns connections per host,
// all of which it keeps idle between calls (so none is closed and opened
// again during an attack), with keep-alive.
func newTransport(conns int) *http.Transport {
	dialer := &net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:         dialer.DialContext,
		MaxConnsPerHost:     conns,
		MaxIdleConnsPerHost: conns,
		MaxIdleConns:        conns,
		IdleConnTimeout:     30 * time.Second,
	}
}

// summary is one side of a comparison, over all its rounds.
type summary struct {
	Throughput float64   `json:"throughput_per_s"`
	Rounds     []float64 `json:"rounds_per_s,omitempty"`
	P50        float64   `json:"p50_ms,omitempty"`
	P99        float64   `json:"p99_ms,omitempty"`
	// P50s and P99s are each round's; P50 and P99 their medians, so one
	// round hit by the shared machine's stalls does not make the figure.
	P50s     []float64 `json:"p50_rounds_ms,omitempty"`
	P99s     []float64 `json:"p99_rounds_ms,omitempty"`
	P99All   float64   `json:"p99_pooled_ms,omitempty"`
	Requests int       `json:"requests"`
	Failed   int       `json:"failed"`
	Errors   []string  `json:"errors,omitempty"`
	// At a fixed rate: the asked rate, each round's achieved rates (sent
	// per second of sending, successful per second of the round) and why
	// the latencies do not count, if they do not ("" when valid).
	Asked   int       `json:"asked_per_s,omitempty"`
	Sent    []float64 `json:"achieved_sent_rounds_per_s,omitempty"`
	OKRate  []float64 `json:"achieved_ok_rounds_per_s,omitempty"`
	Invalid string    `json:"invalid,omitempty"`
}

// throughput sums the rounds: successful calls over the time they took.
func throughput(runs []run) summary {
	var s summary
	var ok int
	var elapsed time.Duration
	for _, r := range runs {
		ok += r.OK
		elapsed += r.Elapsed
		s.Requests += r.Requests
		s.Failed += r.Requests - r.OK
		s.Rounds = append(s.Rounds, round1(float64(r.OK)/r.Elapsed.Seconds()))
		s.Errors = appendErrors(s.Errors, r.Errors)
	}
	s.Throughput = round1(float64(ok) / elapsed.Seconds())
	return s
}

// latency pools the rounds' latencies at a fixed rate. If a round did not
// achieve the asked rate (run.invalid), the side is invalid: Invalid is
// the worst round's reason.
func latency(runs []run) summary {
	var s summary
	var all []time.Duration
	var ok int
	var elapsed time.Duration
	worst := math.Inf(1)
	for i, r := range runs {
		sent, okRate := r.achieved()
		s.Asked = r.Asked
		s.Sent = append(s.Sent, round1(sent))
		s.OKRate = append(s.OKRate, round1(okRate))
		if why := r.invalid(); why != "" && min(sent, okRate) < worst {
			worst = min(sent, okRate)
			s.Invalid = fmt.Sprintf("%s (round %d of %d)", why, i+1, len(runs))
		}
		all = append(all, r.Latencies...)
		s.P50s = append(s.P50s, quantile(r.Latencies, 0.50))
		s.P99s = append(s.P99s, quantile(r.Latencies, 0.99))
		ok += r.OK
		elapsed += r.Elapsed
		s.Requests += r.Requests
		s.Failed += r.Requests - r.OK
		s.Errors = appendErrors(s.Errors, r.Errors)
	}
	s.Throughput = round1(float64(ok) / elapsed.Seconds())
	s.P99All = quantile(all, 0.99)
	s.P50, s.P99 = median(s.P50s), median(s.P99s)
	return s
}

func median(fs []float64) float64 {
	if len(fs) == 0 {
		return 0
	}
	fs = slices.Clone(fs)
	slices.Sort(fs)
	if len(fs)%2 == 1 {
		return fs[len(fs)/2]
	}
	return (fs[len(fs)/2-1] + fs[len(fs)/2]) / 2
}

func appendErrors(to, from []string) []string {
	for _, e := range from {
		if len(to) < 5 && !slices.Contains(to, e) {
			to = append(to, e)
		}
	}
	return to
}

// quantile returns the q-quantile of ds in milliseconds (exact, by sorting).
func quantile(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	slices.Sort(ds)
	i := int(q*float64(len(ds))+0.5) - 1
	i = max(0, min(i, len(ds)-1))
	return float64(ds[i].Microseconds()) / 1000
}

func round1(f float64) float64 { return float64(int64(f*10+0.5)) / 10 }

// side is one thing being driven: a targeter and the options of its
// attacker.
type side struct {
	name  string
	admin string // Caddy's admin endpoint, for profiles
	tr    vegeta.Targeter
	ok    int
	rt    http.RoundTripper // nil: HTTP, a transport of the attack's own
}

// interleave runs every side once per round, alternating which goes first,
// so drift of the machine hits all sides alike. rate 0 is full speed.
func interleave(sides []side, rounds int, rate int, workers uint64, d time.Duration) [][]run {
	out := make([][]run, len(sides))
	for r := range rounds {
		for k := range sides {
			i := k
			if r%2 == 1 {
				i = len(sides) - 1 - k
			}
			s := sides[i]
			out[i] = append(out[i], attack(s.name, s.tr, rate, workers, d, s.ok, s.rt))
		}
	}
	return out
}

// targeter returns a vegeta targeter whose n-th target make builds.
func targeter(make func(n int64, t *vegeta.Target)) vegeta.Targeter {
	var n atomic.Int64
	return func(t *vegeta.Target) error {
		make(n.Add(1), t)
		return nil
	}
}

// etcdPuts is an http.RoundTripper that turns each call into one raw etcd
// put of size bytes, so vegeta drives etcd with the same pacing and
// concurrency as it drives the gateway: the attack's workers are bounded
// (see bounds) and each has at most one put in flight, over the one gRPC
// connection of cli.
type etcdPuts struct {
	cli    *clientv3.Client
	prefix string
	value  string
	seq    atomic.Int64
}

func (e *etcdPuts) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		_, _ = io.Copy(io.Discard, req.Body)
		req.Body.Close()
	}
	ctx, cancel := context.WithTimeout(req.Context(), 10*time.Second)
	defer cancel()
	if _, err := e.cli.Put(ctx, fmt.Sprintf("%s%012d", e.prefix, e.seq.Add(1)), e.value); err != nil {
		return nil, err
	}
	return &http.Response{StatusCode: http.StatusAccepted, Body: http.NoBody, Header: http.Header{}, Request: req}, nil
}
