package main

import (
	"context"
	"fmt"
	"io"
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
	Requests  int
	OK        int
	Elapsed   time.Duration
	Latencies []time.Duration // of the successful calls
	Codes     map[string]int
	Errors    []string
}

// attack drives tr for d: at full speed with workers connections when rate
// is 0, else at rate per second (vegeta adds workers as needed so the rate
// holds and the tail latency is honest). ok is the status that counts as
// success.
func attack(name string, tr vegeta.Targeter, rate int, workers uint64, d time.Duration, ok int, opts ...func(*vegeta.Attacker)) run {
	opts = append([]func(*vegeta.Attacker){vegeta.Workers(workers), vegeta.KeepAlive(true), vegeta.Timeout(30 * time.Second)}, opts...)
	pacer := vegeta.Rate{Freq: rate, Per: time.Second}
	if rate == 0 {
		opts = append(opts, vegeta.MaxWorkers(workers))
		pacer = vegeta.Rate{}
	}
	a := vegeta.NewAttacker(opts...)
	r := run{Codes: map[string]int{}}
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

// latency pools the rounds' latencies at a fixed rate.
func latency(runs []run) summary {
	var s summary
	var all []time.Duration
	var ok int
	var elapsed time.Duration
	for _, r := range runs {
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
	opts  []func(*vegeta.Attacker)
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
			out[i] = append(out[i], attack(s.name, s.tr, rate, workers, d, s.ok, s.opts...))
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
// concurrency as it drives the gateway.
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
