package walkthrough

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
)

// demo is the running `gateway demo` and what it printed first.
type demo struct {
	screen string
}

// startDemo runs the README's demo command, as printed, from the
// repository root, and waits for its instructions.
func startDemo(t *testing.T, bash, root, command string) *demo {
	t.Helper()
	cmd := exec.Command(bash, "-c", command)
	cmd.Dir = root
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(t.TempDir(), "demo.stderr"))
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		// Ctrl-C, as a person stops it; the whole group (go run's child too).
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			b, _ := os.ReadFile(stderr.Name())
			t.Logf("demo stderr:\n%s", b)
		}
	})
	screen := make(chan string, 1)
	go func() {
		var b strings.Builder
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			b.WriteString(sc.Text() + "\n")
			if strings.HasPrefix(sc.Text(), "Ctrl-C stops the demo") {
				screen <- b.String()
				_, _ = io.Copy(io.Discard, stdout) // keep reading: the demo must never block on its output
				return
			}
		}
		screen <- b.String()
	}()
	select {
	case s := <-screen:
		if !strings.Contains(s, "Ctrl-C stops the demo") {
			b, _ := os.ReadFile(stderr.Name())
			t.Fatalf("the demo stopped before it was ready:\n%s\nstderr:\n%s", s, b)
		}
		return &demo{screen: s}
	case <-time.After(6 * time.Minute): // go run builds the binary first
		t.Fatal("the demo did not print its instructions")
	}
	return nil
}

// freePort fails (in CI) or skips the test when the README's port is
// taken: the walk-through is run on the port it names, not another.
func freePort(t *testing.T, port string) {
	t.Helper()
	ln, err := net.Listen("tcp", ":"+port)
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("port %s, which the README uses, is taken: %v", port, err)
		}
		t.Skipf("port %s, which the README uses, is taken (a demo running?)", port)
	}
	ln.Close()
}

// step is what the test expects of one walk-through command: the command
// must contain cmd (so that a README edit that moves steps is caught
// here), and its output must satisfy check.
type step struct {
	cmd   string
	check func(out string) string // "" when fine, else what is wrong
}

func has(parts ...string) func(string) string {
	return func(out string) string {
		for _, p := range parts {
			if !strings.Contains(out, p) {
				return "missing " + p
			}
		}
		return ""
	}
}

var recordID = regexp.MustCompile(`"id":"([0-9a-f-]{36})"`)

// TestReadmeWalkThrough: a clean checkout, the README's demo command, the
// export lines it printed, then every command of the README's walk-through
// pasted as it stands.
func TestReadmeWalkThrough(t *testing.T) {
	bash := testkit.Tool(t, "bash")
	testkit.Tool(t, "curl")
	testkit.Tool(t, "go")
	root, _ := filepath.Abs("../..")
	readme, err := readFile(filepath.Join(root, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := section(readme, "The two commands")
	if err != nil {
		t.Fatal(err)
	}
	two := commands(shellBlocks(first)[0])
	if len(two) != 2 || !strings.HasPrefix(two[0].text, "go run ./gateway demo") {
		t.Fatalf("the README's two commands: %q", two)
	}
	freePort(t, "8080")
	d := startDemo(t, bash, root, two[0].text)
	t.Logf("the demo's first screen:\n%s", d.screen)
	checkFirstScreen(t, d.screen, readme, root)
	answersOnEveryName(t)

	walk, err := section(readme, "Walk-through: park, approve, complete")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []command
	for _, b := range shellBlocks(walk) {
		cmds = append(cmds, commands(b)...)
	}

	sh := startShell(t, bash)
	for _, line := range strings.Split(d.screen, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "export ") {
			if _, err := sh.run(line); err != nil {
				t.Fatal(err)
			}
		}
	}

	var id string
	afterHours := false
	steps := []step{
		{"curl -s localhost:8080/devices", has(`"ownership":"personal"`, `"name":"PHONE-7"`)},
		{"devices/1/wipe", has(`"id":"1"`, `"state":"wiped"`)},
		{"devices/2/wipe", has("HTTP/1.1 428", "justification_required", "Approval-Justification")},
		{"tee /tmp/parked.txt", func(out string) string {
			m := recordID.FindStringSubmatch(out)
			if m == nil {
				return "no request id"
			}
			id = m[1]
			afterHours = strings.Contains(out, `"group":"on-call-approvers"`)
			return has("HTTP/1.1 202 Accepted", "Location: /.approvals/api/v1/requests/"+id, `"policy":"devices"`, `"status":"needs_approval"`)(out)
		}},
		{"ID=$(sed", func(string) string { return "" }},
		{"still stolen", func(out string) string { return has("pending_exists", `"request_id":"`+id+`"`)(out) }},
		{"$ID/approve -H \"Authorization: Bearer $ALICE\"", has("self_approval")},
		{"view=received", func(out string) string { return has(`"id":"` + id + `"`)(out) }},
		{"Bearer $BOB", func(out string) string {
			if afterHours {
				return has(`"status":"needs_approval"`, `"subject":"bob"`, "confirmed with the owner")(out)
			}
			return has(`"status":"approved"`, `"subject":"bob"`, "confirmed with the owner")(out)
		}},
		{"Bearer $DAVE", func(out string) string {
			if afterHours {
				return has(`"status":"approved"`, `"subject":"dave"`)(out)
			}
			return has("not_found")(out)
		}},
		{"/complete", func(out string) string {
			return has("HTTP/1.1 200", "Approval-Request-Id: "+id, `"state":"wiped"`, `"name":"PHONE-7"`)(out)
		}},
		{"/complete", has("HTTP/1.1 409", "invalid_transition")},
		{"$ID -H \"Authorization: Bearer $ALICE\"", has(`"status":"completed"`, `"result":`, `"history":`)},
		{"cat > /tmp/freeze.json", func(string) string { return "" }},
		{"policies/freeze -H \"Authorization: Bearer $CAROL\" \\", has(`"policy":"gateway-policies"`, `"resource":"policies/freeze"`, `"status":"needs_approval"`)},
		{"PID=$(sed", func(string) string { return "" }},
		{"$PID/approve", has(`"status":"approved"`)},
		{"$PID/complete", has(`"name":"freeze"`, `"version":1`)},
		{"localhost:8080/apps/1", has(`{"error":{"code":"denied","message":"change freeze until the quarter closes","policy":"freeze"}}`)},
		{"policies/freeze -H \"Authorization: Bearer $CAROL\"", has(`"versions":`, `"proposed_by":"carol"`, `"approved_by":["bob"]`)},
		{"api/v1/health", has(`"status":"ok"`, `"files":["`+root+`/policies/`)},
	}
	if len(cmds) != len(steps) {
		for i, c := range cmds {
			t.Logf("command %d: %s", i+1, c.text)
		}
		t.Fatalf("the walk-through has %d commands; this test knows %d: update it with the README", len(cmds), len(steps))
	}
	for i, c := range cmds {
		s := steps[i]
		if !strings.Contains(c.text, s.cmd) {
			t.Fatalf("walk-through command %d is\n%s\nwhere this test expects one with %q", i+1, c.text, s.cmd)
		}
		out, err := sh.run(c.text)
		if err != nil {
			t.Fatalf("command %d: %v\n%s", i+1, err, out)
		}
		if what := s.check(out); what != "" {
			t.Fatalf("walk-through command %d:\n%s\nanswered (%s):\n%s", i+1, c.text, what, out)
		}
		t.Logf("ok %d: %s", i+1, strings.SplitN(c.text, "\n", 2)[0])
	}
	if id == "" {
		t.Fatal("no request was parked")
	}

	// The console, in a real Chromium, signed in through the demo's
	// provider; the API tokens above come from the same issuer.
	tokens := map[string]string{}
	for _, m := range regexp.MustCompile(`export (\w+)=(\S+)`).FindAllStringSubmatch(d.screen, -1) {
		tokens[m[1]] = m[2]
	}
	t.Run("console", func(t *testing.T) { consoleWalkThrough(t, tokens) })
}

// checkFirstScreen: instructions, not logs; where the console and the
// logs are; and the first steps it prints are the README's.
func checkFirstScreen(t *testing.T, screen, readme, root string) {
	t.Helper()
	for _, line := range strings.Split(screen, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "{") {
			t.Fatalf("a log line among the instructions: %s", line)
		}
	}
	if !strings.Contains(screen, "Console   http://localhost:8080/.approvals/") {
		t.Fatalf("the first screen does not say where the console is:\n%s", screen)
	}
	m := regexp.MustCompile(`Logs\s+(\S+)`).FindStringSubmatch(screen)
	if m == nil {
		t.Fatalf("the first screen does not say where the logs are:\n%s", screen)
	}
	logs, err := readFile(m[1])
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs, `"logger":"http.handlers.approval_gateway`) || !strings.Contains(logs, `"`+root+`/policies/approval.rego"`) {
		t.Fatalf("the log file does not hold the gateway's logs, with policy files by their paths:\n%.3000s", logs)
	}
	walk, _ := section(readme, "Walk-through: park, approve, complete")
	readmeLines := map[string]bool{}
	for _, l := range walk {
		readmeLines[strings.TrimSpace(l)] = true
	}
	_, steps, ok := strings.Cut(screen, "which starts with:\n")
	if !ok {
		t.Fatalf("the first screen shows no first steps:\n%s", screen)
	}
	steps, _, _ = strings.Cut(steps, "\n\n")
	for _, l := range strings.Split(strings.TrimSpace(steps), "\n") {
		if !readmeLines[strings.TrimSpace(l)] {
			t.Errorf("the demo prints a step the README's walk-through does not have:\n%s", l)
		}
	}
}

// startShell starts the bash that the steps are pasted into, in a
// directory of its own, stderr with stdout.
func startShell(t *testing.T, bash string) *shell {
	t.Helper()
	cmd := exec.Command(bash, "--noprofile", "--norc")
	cmd.Dir = t.TempDir()
	in, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { in.Close(); _ = cmd.Wait() })
	sh := &shell{in: in, out: bufio.NewReader(out)}
	if _, err := sh.run("exec 2>&1"); err != nil {
		t.Fatal(err)
	}
	return sh
}

// answersOnEveryName: the demo's site is reached by any name of this
// machine, not only the one the README uses.
func answersOnEveryName(t *testing.T) {
	t.Helper()
	hosts := []string{"localhost", "127.0.0.1"}
	if name, err := os.Hostname(); err == nil {
		if _, err := net.LookupHost(name); err == nil {
			hosts = append(hosts, name)
		} else {
			t.Logf("this machine's name %q does not resolve: not tried", name)
		}
	}
	for _, h := range hosts {
		resp, err := http.Get("http://" + net.JoinHostPort(h, "8080") + "/devices")
		if err != nil {
			t.Fatalf("the demo on %s: %v", h, err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(b), "PHONE-7") {
			t.Fatalf("the demo on %s answered %d: %s", h, resp.StatusCode, b)
		}
	}
}
