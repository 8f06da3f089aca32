package policy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func decideAction(t *testing.T, e *Engine) string {
	t.Helper()
	d, _ := e.DecideCall(context.Background(), call("POST", "/x", ""), alice, time.Now())
	return d.Action + "/" + d.Policy
}

func rule(policy string) string {
	return "package approval\n\ndecision := {\"action\": \"allow\", \"policy\": \"" + policy + "\"}\n"
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("not in time")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestWatchPicksUpChangesAndKeepsBrokenOnesOut(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": rule("v1")})
	r, err := NewReloader(context.Background(), dir, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { _ = r.Watch(ctx, 50*time.Millisecond) }()
	time.Sleep(100 * time.Millisecond) // the watch is set up

	// A good change is picked up without a restart.
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rule("v2")), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return decideAction(t, r.Engine()) == "allow/v2" })

	// A broken change never replaces the working policy; the error names
	// the file and line and shows in the status.
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package approval\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return r.Status().Error != "" })
	if !strings.Contains(r.Status().Error, "p.rego:4") {
		t.Fatalf("status error %q does not name p.rego:4", r.Status().Error)
	}
	if got := decideAction(t, r.Engine()); got != "allow/v2" {
		t.Fatalf("a broken change replaced the policy: %s", got)
	}

	// A data file in a new subdirectory is picked up too.
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte("package approval\n\ndecision := {\"action\": \"allow\", \"policy\": data.names.current}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "names"), 0o755); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond)
	if err := os.WriteFile(filepath.Join(dir, "names", "data.json"), []byte(`{"current": "from-data"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, func() bool { return decideAction(t, r.Engine()) == "allow/from-data" })
	if r.Status().Error != "" {
		t.Fatalf("error not cleared after a good reload: %s", r.Status().Error)
	}
}

// TestEvaluationDuringSwaps evaluates from many goroutines while the policy
// is swapped: every decision comes whole from one version (run with -race).
func TestEvaluationDuringSwaps(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": rule("v0")})
	r, err := NewReloader(context.Background(), dir, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	var evals atomic.Int64
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				d, err := r.Engine().DecideCall(context.Background(), call("POST", "/x", ""), alice, time.Now())
				if err != nil || d.Action != Allow || !strings.HasPrefix(d.Policy, "v") {
					t.Errorf("decision during a swap: %+v %v", d, err)
					return
				}
				evals.Add(1)
			}
		}()
	}
	for i := 1; i <= 20; i++ {
		mods := []Module{{Name: "extra", Rego: "package approval.extra\n\nx := " + string(rune('0'+i%10)) + "\n"}}
		if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rule("v"+string(rune('a'+i)))), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := r.SetRuntime(context.Background(), mods); err != nil {
			t.Fatal(err)
		}
	}
	stop.Store(true)
	wg.Wait()
	if evals.Load() == 0 {
		t.Fatal("no evaluation ran during the swaps")
	}
	if got := decideAction(t, r.Engine()); got != "allow/vu" {
		t.Fatalf("last version not in force: %s", got)
	}
}

func TestRuntimeModules(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": "package approval\n\nimport data.approval.policies\n\ndecision := policies.freeze.decision if policies.freeze.decision\n\nelse := {\"action\": \"allow\", \"policy\": \"files\"}\n"})
	r, err := NewReloader(context.Background(), dir, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	freeze := Module{Name: "freeze", Rego: "package approval.policies.freeze\n\ndecision := {\"action\": \"deny\", \"policy\": \"freeze\", \"reason\": data.runtime.freeze.why}\n",
		Data: map[string]any{"why": "quarter close"}}
	if _, err := r.Check(context.Background(), []Module{{Name: "bad", Rego: "package approval.policies.bad\n\ndecision := {"}}); err == nil ||
		!strings.Contains(err.Error(), "runtime/bad.rego") {
		t.Fatalf("check of a broken module: %v", err)
	}
	if err := r.SetRuntime(context.Background(), []Module{freeze}); err != nil {
		t.Fatal(err)
	}
	d, err := r.Engine().DecideCall(context.Background(), call("POST", "/x", ""), alice, time.Now())
	if err != nil || d.Action != Deny || d.Reason != "quarter close" {
		t.Fatalf("runtime module not in force: %+v %v", d, err)
	}
	if err := r.SetRuntime(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	if got := decideAction(t, r.Engine()); got != "allow/files" {
		t.Fatalf("after removing the module: %s", got)
	}
	if st := r.Status(); len(st.Runtime) != 0 || len(st.Files) != 1 {
		t.Fatalf("status %+v", st)
	}
}
