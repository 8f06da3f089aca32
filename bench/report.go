package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
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

func (r results) write(dir string) error {
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
			ts = append(ts, fmt.Sprintf("%s %.3f, want %s: %s", t.What, t.Value, t.Want, yes(t.Met)))
		}
		if s.Name == "D" {
			fmt.Fprintf(&b, "| D: %s | %.1f lifecycles/s | — | — | full speed | %.1f ms | %.1f ms | — |\n",
				s.What, s.Max.Gateway.Throughput, s.Max.Gateway.P50, s.Max.Gateway.P99)
			continue
		}
		fmt.Fprintf(&b, "| %s: %s | %.0f/s | %s: %.0f/s | %.3f | %d/s | %.2f / %.2f ms | %.2f / %.2f ms (%.2f×) | %s |\n",
			s.Name, s.What, s.Max.Gateway.Throughput, s.Baseline, s.Max.Baseline.Throughput, s.Max.Ratio, s.Rate,
			s.Fixed.Gateway.P50, s.Fixed.Baseline.P50, s.Fixed.Gateway.P99, s.Fixed.Baseline.P99, s.Fixed.P99Ratio, strings.Join(ts, "; "))
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
	fmt.Fprintf(&b, "Each side runs %d rounds of %s, interleaved with its baseline (the order alternates each round); "+
		"full speed is %d connections, the fixed rate is a constant-rate vegeta attack.\n\n", r.Rounds, r.Duration, r.Workers)
	b.WriteString(r.table())
	b.WriteString("\nPer round (gateway | baseline):\n\n")
	for _, s := range r.Scenarios {
		if s.Name == "D" {
			fmt.Fprintf(&b, "- D: %d lifecycles, %d failed %v\n", s.Max.Gateway.Requests-s.Max.Gateway.Failed, s.Max.Gateway.Failed, s.Max.Gateway.Errors)
			continue
		}
		fmt.Fprintf(&b, "- %s: %v | %v; p99 per round at %d/s %v | %v ms, pooled %.2f | %.2f ms; failed calls %d | %d", s.Name, s.Max.Gateway.Rounds, s.Max.Baseline.Rounds,
			s.Rate, s.Fixed.Gateway.P99s, s.Fixed.Baseline.P99s, s.Fixed.Gateway.P99All, s.Fixed.Baseline.P99All,
			s.Max.Gateway.Failed+s.Fixed.Gateway.Failed, s.Max.Baseline.Failed+s.Fixed.Baseline.Failed)
		if errs := append(append([]string{}, s.Max.Gateway.Errors...), s.Fixed.Gateway.Errors...); len(errs) > 0 {
			fmt.Fprintf(&b, " (gateway errors: %s)", strings.Join(errs, "; "))
		}
		if s.Note != "" {
			fmt.Fprintf(&b, "; %s", s.Note)
		}
		b.WriteString("\n")
	}
	m := r.Memory
	fmt.Fprintf(&b, "\nMemory (store: %s): with %v pending requests, the RSS of the gateway that parked them was %v MiB; "+
		"a fresh gateway serving that store (10 s of list pages and reads while the sweeper went over every pending request each second) %v MiB; "+
		"the first page of all requests through the API took %v ms (median; "+
		"with the sweeper reading every pending request each second on the same two cores, so not the list page's own cost: "+
		"that is the store's microbenchmark, see results-micro.md).\n", m.Store, m.Pending, mib(m.AfterParking), mib(m.Serving), m.ListP50)
	return b.String()
}
