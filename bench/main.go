// Command bench is the side-by-side load benchmark: it builds the gateway,
// starts a trivial backend, plain Caddy with a reverse_proxy to it and the
// gateway in front of the same backend (one binary, one machine), drives
// them with the same constant-rate load from vegeta, interleaving the
// sides, and writes results.md and results.json.
//
//	go run ./bench            # from the repository root
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// config of one benchmark run.
type config struct {
	out      string
	duration time.Duration
	rounds   int
	workers  uint64
	share    float64
	profile  string
	keep     bool
	only     string
	readme   string
}

func main() {
	if len(os.Args) > 2 && os.Args[1] == "backend" {
		serveBackend(os.Args[2])
		return
	}
	var c config
	flag.StringVar(&c.out, "out", "bench", "directory for results.md and results.json")
	flag.DurationVar(&c.duration, "duration", 3*time.Second, "length of each attack")
	flag.IntVar(&c.rounds, "rounds", 5, "rounds per side, interleaved (ratios are the median of the rounds' ratios)")
	flag.Uint64Var(&c.workers, "workers", 32, "workers and connections when driving at full speed; a fixed rate uses at most twice as many")
	flag.Float64Var(&c.share, "share", 0.5, "the fixed rate as a share of the maximum (above 1, to see a phase reported invalid)")
	flag.StringVar(&c.profile, "profile", "", "directory for CPU profiles of the gateway at full load (pprof)")
	flag.BoolVar(&c.keep, "keep", false, "keep the working directory (logs, data)")
	flag.StringVar(&c.readme, "readme", "README.md", "README whose load benchmark table to replace (\"\" for none)")
	flag.StringVar(&c.only, "only", "ABbPCEDSM", "the scenarios to run (b: B′, P: B″ (PATCH, policy reads the body), E: C on an external etcd, S: 1,000 event streams on one gateway, M: memory)")
	flag.Parse()
	log.SetFlags(log.Ltime)
	if _, err := os.Stat("policies/approval.rego"); err != nil {
		log.Fatal("run the benchmark from the repository root: go run ./bench")
	}
	if err := benchmark(c); err != nil {
		log.Fatal(err)
	}
}

// serveBackend is the trivial backend: it reads the body and answers 200.
func serveBackend(addr string) {
	body := []byte(`{"ok":true}` + "\n")
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(body)
	})
	log.Fatal(http.ListenAndServe(addr, h))
}

func benchmark(c config) error {
	began := time.Now()
	work, err := os.MkdirTemp("", "approval-bench-")
	if err != nil {
		return err
	}
	if c.keep {
		log.Printf("working directory: %s", work)
	} else {
		defer os.RemoveAll(work)
	}
	log.Print("building the gateway")
	bin := filepath.Join(work, "gateway")
	if err := build("./gateway", bin); err != nil {
		return err
	}
	if err := build("./test/fault/etcdmember", filepath.Join(work, "etcdmember")); err != nil {
		return err
	}
	// The previous results, read before this run replaces them.
	prev, prevErr := readResults(filepath.Join(c.out, "results.json"))
	setup, err := newEnv(work, bin)
	if err != nil {
		return err
	}
	defer setup.stop()

	res := results{Date: began.UTC().Format(time.RFC3339), Command: "go run ./bench" + flagsText(c),
		Machine: machine(), Duration: c.duration.String(), Rounds: c.rounds, Workers: c.workers}
	for _, s := range []struct {
		key string
		run func(*env, config) (scenario, error)
	}{{"A", scenarioA}, {"B", scenarioB}, {"b", scenarioB1}, {"P", scenarioB2}, {"C", scenarioC}, {"E", scenarioCExt}, {"D", scenarioD}} {
		if !strings.Contains(c.only, s.key) {
			continue
		}
		sc, err := s.run(setup, c)
		if err != nil {
			return err
		}
		log.Print(sc.line())
		res.Scenarios = append(res.Scenarios, sc)
	}
	if strings.Contains(c.only, "S") {
		st, err := scenarioS(setup)
		if err != nil {
			return err
		}
		log.Print(st.line())
		res.Streams = st
	}
	setup.stop()
	if strings.Contains(c.only, "M") {
		mem, err := memory(work, bin, c)
		if err != nil {
			return err
		}
		log.Print(mem.line())
		res.Memory = mem
	}
	if prevErr == nil {
		res.Previous = res.compareWith(prev)
		log.Printf("against the previous run (%s): %d of %d ratios within ±%.0f %%", prev.Date, res.Previous.Within, res.Previous.Compared, driftBound*100)
	} else {
		log.Printf("no previous results to compare with: %v", prevErr)
	}
	res.Took = time.Since(began).Round(time.Second).String()
	if err := res.write(c.out); err != nil {
		return err
	}
	if c.readme != "" {
		if err := res.updateReadme(c.readme); err != nil {
			return err
		}
	}
	log.Printf("wrote %s and %s in %s", filepath.Join(c.out, "results.md"), filepath.Join(c.out, "results.json"), res.Took)
	return nil
}

// flagsText renders the flags that differ from their defaults.
func flagsText(c config) string {
	s := ""
	flag.Visit(func(f *flag.Flag) {
		if f.Name != "out" && f.Name != "keep" && f.Name != "profile" && f.Name != "readme" {
			s += fmt.Sprintf(" -%s %s", f.Name, f.Value)
		}
	})
	return s
}
