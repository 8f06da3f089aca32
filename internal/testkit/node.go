package testkit

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// Tool returns the path of a program the test needs. Missing, it skips the
// test locally and fails it in CI (CI=true), which installs what the tests
// need.
func Tool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s is required in CI: %v", name, err)
		}
		t.Skipf("%s not installed", name)
	}
	return p
}

var npmInstalls sync.Map // dir → *sync.Once

// NodeApp runs `node script args…` in dir with env added, installing its
// npm packages first (npm ci) when pkg is missing from node_modules, and
// stops it when the test ends. The app says it is up by printing a line
// "ready <what>"; NodeApp returns <what>.
func NodeApp(t testing.TB, dir, pkg string, env []string, script string, args ...string) string {
	t.Helper()
	node := Tool(t, "node")
	dir, _ = filepath.Abs(dir)
	once, _ := npmInstalls.LoadOrStore(dir, new(sync.Once))
	once.(*sync.Once).Do(func() {
		if _, err := os.Stat(filepath.Join(dir, "node_modules", pkg)); err == nil {
			return
		}
		cmd := exec.Command(Tool(t, "npm"), "ci", "--no-audit", "--no-fund", "--loglevel=error")
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("npm ci in %s: %v\n%s", dir, err, out)
		}
	})
	cmd := exec.Command(node, append([]string{script}, args...)...)
	cmd.Dir, cmd.Env = dir, append(os.Environ(), env...)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	ready := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if what, ok := strings.CutPrefix(sc.Text(), "ready "); ok {
				ready <- what
			}
		}
	}()
	select {
	case what := <-ready:
		return what
	case <-time.After(60 * time.Second):
		t.Fatalf("%s in %s did not start", script, dir)
		return ""
	}
}
