package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
)

// results is the whole benchmark run, as written to results.json.
type results struct {
	Date      string       `json:"date"`
	Command   string       `json:"command"`
	Took      string       `json:"took"`
	Machine   machineInfo  `json:"machine"`
	Duration  string       `json:"attack_duration"`
	Rounds    int          `json:"rounds"`
	Workers   uint64       `json:"workers"`
	Scenarios []scenario   `json:"scenarios"`
	Memory    memoryResult `json:"memory"`
	// Streams is scenario S, when it ran.
	Streams *streamsResult `json:"streams,omitempty"`
	// Previous is this run's ratios next to those of the results.json it
	// replaced.
	Previous *against `json:"against_previous,omitempty"`
}

type machineInfo struct {
	CPU    string `json:"cpu"`
	Cores  int    `json:"cores"`
	Memory string `json:"memory"`
	OS     string `json:"os"`
	Go     string `json:"go"`
}

func machine() machineInfo {
	m := machineInfo{Cores: runtime.NumCPU(), Go: runtime.Version(), OS: runtime.GOOS + "/" + runtime.GOARCH}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, l := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(l, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		l, _, _ := strings.Cut(string(b), "\n")
		m.Memory = strings.Join(strings.Fields(strings.TrimPrefix(l, "MemTotal:")), " ")
	}
	if out, err := exec.Command("uname", "-sr").Output(); err == nil {
		m.OS = strings.TrimSpace(string(out)) + " " + runtime.GOARCH
	}
	return m
}

// readResults reads a results.json.
func readResults(path string) (results, error) {
	var r results
	b, err := os.ReadFile(path)
	if err != nil {
		return r, err
	}
	return r, json.Unmarshal(b, &r)
}

func (r results) write(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "results.json"), append(b, '\n'), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "results.md"), []byte(r.markdown()), 0o644)
}

// Markers around the table in the README.
const (
	readmeBegin = "<!-- load benchmark: begin -->\n"
	readmeEnd   = "<!-- load benchmark: end -->\n"
)

// updateReadme puts the table between the markers of the README at path.
func (r results) updateReadme(path string) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	text := string(b)
	i, j := strings.Index(text, readmeBegin), strings.Index(text, readmeEnd)
	if i < 0 || j < i {
		return fmt.Errorf("%s has no load benchmark markers", path)
	}
	table := fmt.Sprintf("Made by `%s` on %s, %d cores (%s); details in [`bench/results.md`](bench/results.md).\n\n%s",
		r.Command, r.Date[:10], r.Machine.Cores, r.Machine.CPU, r.table())
	return os.WriteFile(path, []byte(text[:i+len(readmeBegin)]+"\n"+table+"\n"+text[j:]), 0o644)
}

func yes(ok bool) string {
	if ok {
		return "met"
	}
	return "**missed**"
}

// table renders the scenario table (also used by the README).
func (r results) table() string {
	var b strings.Builder
	b.WriteString("| scenario | gateway | baseline | ratio | fixed rate | p50 gateway / baseline | p99 gateway / baseline (median of rounds) | target |\n")
	b.WriteString("| --- | --- | --- | --- | --- | --- | --- | --- |\n")
	for _, s := range r.Scenarios {
		var ts []string
		for _, t := range s.Targets {
			if t.Invalid != "" {
				ts = append(ts, fmt.Sprintf("%s invalid (the fixed rate was not achieved), want %s: %s", t.What, t.Want, yes(t.Met)))
				continue
			}
			ts = append(ts, fmt.Sprintf("%s %.3f, want %s: %s", t.What, t.Value, t.Want, yes(t.Met)))
		}
		if s.Name == "D" {
			fmt.Fprintf(&b, "| D: %s | %.1f lifecycles/s | — | — | full speed | %.1f ms | %.1f ms | — |\n",
				s.What, s.Max.Gateway.Throughput, s.Max.Gateway.P50, s.Max.Gateway.P99)
			continue
		}
		p50 := fmt.Sprintf("%.2f / %.2f ms", s.Fixed.Gateway.P50, s.Fixed.Baseline.P50)
		p99 := fmt.Sprintf("%.2f / %.2f ms (%.2f×)", s.Fixed.Gateway.P99, s.Fixed.Baseline.P99, s.Fixed.P99Ratio)
		if why := s.fixedInvalid(); why != "" {
			p50, p99 = "invalid: "+why, "invalid"
		}
		fmt.Fprintf(&b, "| %s: %s | %.0f/s | %s: %.0f/s | %.3f | %d/s | %s | %s | %s |\n",
			s.Name, s.What, s.Max.Gateway.Throughput, s.Baseline, s.Max.Baseline.Throughput, s.Max.Ratio, s.Rate,
			p50, p99, strings.Join(ts, "; "))
	}
	if st := r.Streams; st != nil {
		var ts []string
		for _, t := range st.Targets {
			ts = append(ts, fmt.Sprintf("%s %s, want %s: %s", t.What, strconv.FormatFloat(t.Value, 'f', -1, 64), t.Want, yes(t.Met)))
		}
		fmt.Fprintf(&b, "| S: %s event streams on one gateway (external etcd) | RSS +%.1f MiB (%.1f KiB/stream); etcd watchers %d | without streams: RSS %.1f MiB; etcd watchers %d | — | one event to all | delivery p50 %.1f ms | delivery max %.1f ms; received by %s | %s |\n",
			thousands(st.Streams), mb(st.RSSWith-st.RSSBefore), st.KiBPerStream, st.WatchersWith, mb(st.RSSBefore), st.WatchersBefore,
			st.DeliveryP50, st.DeliveryMax, thousands(st.Received), strings.Join(ts, "; "))
	}
	m := r.Memory
	for _, t := range m.Targets {
		fmt.Fprintf(&b, "| memory: %s | | | %.3f | | | | want %s: %s |\n", t.What, t.Value, t.Want, yes(t.Met))
	}
	return b.String()
}

func (r results) markdown() string {
	var b strings.Builder
	b.WriteString("# Load benchmark\n\n")
	fmt.Fprintf(&b, "Made by `%s` on %s (took %s).\n\n", r.Command, r.Date, r.Took)
	fmt.Fprintf(&b, "Machine: %s, %d cores, %s memory, %s, %s. The load generator, the backend, plain Caddy and the gateway share it.\n\n",
		r.Machine.CPU, r.Machine.Cores, r.Machine.Memory, r.Machine.OS, r.Machine.Go)
	_, most := bounds(1, r.Workers)
	fmt.Fprintf(&b, "Each side runs %d rounds of %s, interleaved with its baseline (the order alternates each round); "+
		"full speed is %d workers on as many connections, the fixed rate is a constant-rate vegeta attack with at most %d workers "+
		"and connections. A fixed-rate round that sends or answers less than %.0f %% of the asked rate, or has failed calls, "+
		"makes that side's latency figures invalid: they are not reported and their target is not met. "+
		"Each attack's connections are closed before the next.\n\n", r.Rounds, r.Duration, r.Workers, most, minAchieved*100)
	b.WriteString(r.table())
	b.WriteString("\nPer round (gateway | baseline):\n\n")
	for _, s := range r.Scenarios {
		if s.Name == "D" {
			fmt.Fprintf(&b, "- D: %d lifecycles, %d failed %v\n", s.Max.Gateway.Requests-s.Max.Gateway.Failed, s.Max.Gateway.Failed, s.Max.Gateway.Errors)
			continue
		}
		fmt.Fprintf(&b, "- %s: %v | %v; at %d/s achieved %v | %v /s sent, %v | %v /s answered; p99 per round %v | %v ms, pooled %.2f | %.2f ms; failed calls %d | %d", s.Name, s.Max.Gateway.Rounds, s.Max.Baseline.Rounds,
			s.Rate, s.Fixed.Gateway.Sent, s.Fixed.Baseline.Sent, s.Fixed.Gateway.OKRate, s.Fixed.Baseline.OKRate,
			s.Fixed.Gateway.P99s, s.Fixed.Baseline.P99s, s.Fixed.Gateway.P99All, s.Fixed.Baseline.P99All,
			s.Max.Gateway.Failed+s.Fixed.Gateway.Failed, s.Max.Baseline.Failed+s.Fixed.Baseline.Failed)
		if why := s.fixedInvalid(); why != "" {
			fmt.Fprintf(&b, " (fixed rate invalid: %s)", why)
		}
		if errs := append(append([]string{}, s.Max.Gateway.Errors...), s.Fixed.Gateway.Errors...); len(errs) > 0 {
			fmt.Fprintf(&b, " (gateway errors: %s)", strings.Join(errs, "; "))
		}
		if s.Note != "" {
			fmt.Fprintf(&b, "; %s", s.Note)
		}
		b.WriteString("\n")
	}
	if m := r.Memory; len(m.Pending) > 0 {
		fmt.Fprintf(&b, "\nMemory (store: %s): with %v pending requests, the RSS of the gateway that parked them was %v MiB; "+
			"a fresh gateway serving that store (10 s of list pages and reads while the sweeper went over every pending request each second) %v MiB; "+
			"the first page of all requests through the API took %v ms (median; "+
			"with the sweeper reading every pending request each second on the same two cores, so not the list page's own cost: "+
			"that is the store's microbenchmark, see results-micro.md).\n", m.Store, m.Pending, mib(m.AfterParking), mib(m.Serving), m.ListP50)
	}
	if r.Streams != nil {
		b.WriteString("\n" + r.Streams.paragraph())
	}
	b.WriteString("\n## Against the previous run\n\n")
	b.WriteString(r.Previous.markdown())
	return b.String()
}

// driftBound is how far a ratio may move between two runs: ±10 %.
const driftBound = 0.10

// against is a run's ratios next to those of the previous run.
type against struct {
	Date    string  `json:"date"`
	Command string  `json:"command"`
	Ratios  []drift `json:"ratios"`
	// Within of Compared ratios moved by no more than driftBound.
	Within   int `json:"within"`
	Compared int `json:"compared"`
}

// drift is one ratio in the previous run and in this one.
type drift struct {
	Scenario string  `json:"scenario"`
	What     string  `json:"what"`
	Before   float64 `json:"before"`
	Now      float64 `json:"now"`
	Change   float64 `json:"change"` // now / before - 1
	Within   bool    `json:"within"`
	Note     string  `json:"note,omitempty"`
}

// ratioFigure is one ratio of a run; invalid says why it does not count.
type ratioFigure struct {
	scenario, what string
	value          float64
	invalid        string
}

// ratios lists a run's ratios: per scenario its throughput ratio and its
// fixed-rate latency ratios, and the memory ratios.
func (r results) ratios() []ratioFigure {
	var out []ratioFigure
	for _, s := range r.Scenarios {
		if s.Name == "D" { // no baseline, no ratio
			continue
		}
		why := s.fixedInvalid()
		out = append(out, ratioFigure{s.Name, "throughput ratio", s.Max.Ratio, ""},
			ratioFigure{s.Name, "p50 ratio at the fixed rate", s.Fixed.P50Ratio, why},
			ratioFigure{s.Name, "p99 ratio at the fixed rate", s.Fixed.P99Ratio, why})
	}
	for _, t := range r.Memory.Targets {
		out = append(out, ratioFigure{"memory", t.What, t.Value, ""})
	}
	return out
}

// compareWith sets this run's ratios next to prev's: each ratio both runs
// have is within ±driftBound if now / before - 1 is; an invalid figure on
// either side is not within. Ratios prev lacks (a new scenario) are listed
// but not compared.
func (r results) compareWith(prev results) *against {
	a := &against{Date: prev.Date, Command: prev.Command}
	before := map[[2]string]ratioFigure{}
	for _, f := range prev.ratios() {
		before[[2]string{f.scenario, f.what}] = f
	}
	for _, f := range r.ratios() {
		d := drift{Scenario: f.scenario, What: f.what, Now: f.value}
		b, ok := before[[2]string{f.scenario, f.what}]
		switch {
		case !ok:
			d.Note = "not in the previous run"
		case f.invalid != "":
			d.Before, d.Note = b.value, "invalid now"
		case b.invalid != "":
			d.Before, d.Note = b.value, "invalid before"
		case b.value <= 0 || f.value <= 0:
			d.Before, d.Note = b.value, "no figure"
		default:
			d.Before = b.value
			d.Change = math.Round((f.value/b.value-1)*1000) / 1000
			d.Within = math.Abs(d.Change) <= driftBound
		}
		if ok {
			a.Compared++
			if d.Within {
				a.Within++
			}
		}
		a.Ratios = append(a.Ratios, d)
	}
	return a
}

func (a *against) markdown() string {
	if a == nil {
		return "No previous results.json to compare with.\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The previous run: `%s` on %s. %d of %d ratios within ±%.0f %%.\n\n", a.Command, a.Date, a.Within, a.Compared, driftBound*100)
	b.WriteString("| scenario | ratio | before | now | change | within ±10 % |\n| --- | --- | --- | --- | --- | --- |\n")
	for _, d := range a.Ratios {
		change, within := fmt.Sprintf("%+.1f %%", d.Change*100), "yes"
		if !d.Within {
			within = "**no**"
		}
		if d.Note != "" {
			change = d.Note
			if d.Note == "not in the previous run" {
				within = "—"
			}
		}
		fmt.Fprintf(&b, "| %s | %s | %.3f | %.3f | %s | %s |\n", d.Scenario, d.What, d.Before, d.Now, change, within)
	}
	return b.String()
}
