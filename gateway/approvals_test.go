package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/spf13/cobra"
)

const cliSecret = "cli-test-secret-cli-test-secret-cli"

// startGateway runs the gateway (in-process Caddy with the module and
// embedded etcd) in front of a backend that counts calls.
func startGateway(t *testing.T) (base string, calls func() int) {
	t.Helper()
	var mu sync.Mutex
	n := 0
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet {
			mu.Lock()
			n++
			mu.Unlock()
		}
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"done":"%s %s"}`, r.Method, r.URL.Path)
	}))
	t.Cleanup(backend.Close)
	port := testkit.Port(t)
	base = fmt.Sprintf("http://127.0.0.1:%d", port)
	caddykit.Load(t, base, caddykit.Site(port, "", fmt.Sprintf(`	approval_gateway {
		store embedded %s
		identity jwt {
			secret %s
		}
		policies %s
		admin_groups auditors
	}
	reverse_proxy %s`, t.TempDir(), cliSecret, approvalstest.Policies, strings.TrimPrefix(backend.URL, "http://"))))
	return base, func() int { mu.Lock(); defer mu.Unlock(); return n }
}

// runCLI runs `gateway approvals <args>` in-process and returns what it
// printed and its exit code.
func runCLI(t *testing.T, args ...string) (string, int) {
	t.Helper()
	var out bytes.Buffer
	code := -1
	root := &cobra.Command{Use: "approvals"}
	addApprovalsCommands(root, func(f cliFunc, c *cli) func(*cobra.Command, []string) error {
		return func(cmd *cobra.Command, a []string) error {
			c.out = &out
			var err error
			code, err = f(c, a)
			if err != nil {
				fmt.Fprintln(&out, "error:", err)
			}
			return nil
		}
	})
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	if err := root.Execute(); err != nil {
		return out.String() + err.Error(), exitUsage
	}
	return out.String(), code
}

// parkDelete sends a DELETE of url as tok that the policy parks, and
// returns the request id.
func parkDelete(t *testing.T, url, tok string) string {
	t.Helper()
	req, _ := http.NewRequest("DELETE", url, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Approval-Justification", "retire the old app")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var parked map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&parked)
	resp.Body.Close()
	id, _ := parked["id"].(string)
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("park: %d %v", resp.StatusCode, parked)
	}
	return id
}

func TestCLIWholeFlow(t *testing.T) {
	base, calls := startGateway(t)
	alice, _ := mintToken(cliSecret, "alice", []string{"ops"}, "", "", time.Hour)
	bob, _ := mintToken(cliSecret, "bob", []string{"approvers"}, "", "", time.Hour)
	as := func(tok string, args ...string) []string { return append(args, "--server", base, "--token", tok) }

	// Alice parks a change through the gateway.
	id := parkDelete(t, base+"/apps/7", alice)

	// Bob watches the events in the background.
	watched := make(chan string, 1)
	go func() {
		out, _ := runCLI(t, as(bob, "watch", "--count", "2", "-o", "json")...)
		watched <- out
	}()
	time.Sleep(300 * time.Millisecond)

	// Alice waits for the decision in the background; the exit code says it.
	waited := make(chan int, 1)
	go func() {
		_, code := runCLI(t, as(alice, "wait", id, "--timeout", "30s")...)
		waited <- code
	}()

	out, code := runCLI(t, as(bob, "list", "--view", "received")...)
	if code != exitOK || !strings.Contains(out, id) || !strings.Contains(out, "DELETE /apps/7") || !strings.HasPrefix(out, "ID") {
		t.Fatalf("list (%d):\n%s", code, out)
	}
	out, code = runCLI(t, as(bob, "show", id)...)
	if code != exitOK || !strings.Contains(out, "retire the old app") || !strings.Contains(out, "approvers: 1 required") {
		t.Fatalf("show (%d):\n%s", code, out)
	}
	out, code = runCLI(t, as(alice, "approve", id)...)
	if code != exitRefused || !strings.Contains(out, "self_approval") {
		t.Fatalf("self-approval (%d):\n%s", code, out)
	}
	select {
	case code := <-waited:
		t.Fatalf("wait returned %d before any decision", code)
	default:
	}
	out, code = runCLI(t, as(bob, "approve", id, "--notes", "fine")...)
	if code != exitOK || !strings.Contains(out, "is approved") {
		t.Fatalf("approve (%d):\n%s", code, out)
	}
	select {
	case code := <-waited:
		if code != exitOK {
			t.Fatalf("wait on an approved request exited %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("wait did not return when the request was approved")
	}
	out, code = runCLI(t, as(alice, "complete", id)...)
	if code != exitOK || !strings.Contains(out, "201 Created") || !strings.Contains(out, `{"done":"DELETE /apps/7"}`) {
		t.Fatalf("complete (%d):\n%s", code, out)
	}
	out, code = runCLI(t, as(alice, "complete", id)...)
	if code != exitRefused || !strings.Contains(out, "invalid_transition") || calls() != 1 {
		t.Fatalf("second complete (%d, %d calls):\n%s", code, calls(), out)
	}
	out, code = runCLI(t, as(alice, "list", "-o", "json")...)
	var page struct{ Requests []map[string]any }
	if code != exitOK || json.Unmarshal([]byte(out), &page) != nil || len(page.Requests) != 1 || page.Requests[0]["status"] != "completed" {
		t.Fatalf("list -o json (%d):\n%s", code, out)
	}
	select {
	case out := <-watched:
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if len(lines) != 2 || !strings.Contains(lines[0], `"type":"approval.request.approved"`) || !strings.Contains(lines[1], `"type":"approval.request.completed"`) {
			t.Fatalf("watch:\n%s", out)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("watch did not see the events")
	}

	// Exit codes scripts rely on.
	if _, code := runCLI(t, "list", "--server", base); code != exitUsage {
		t.Fatalf("no token: %d", code)
	}
	if _, code := runCLI(t, as(bob, "reject", id)...); code != exitRefused {
		t.Fatalf("reject a completed request: %d", code)
	}
	if _, code := runCLI(t, as(bob, "list", "-o", "yaml")...); code != exitUsage {
		t.Fatalf("bad output: %d", code)
	}
	if _, code := runCLI(t, "list", "--server", "http://127.0.0.1:1", "--token", bob); code != exitUnavailable {
		t.Fatalf("unreachable gateway: %d", code)
	}
}

// park sends a DELETE that the test policy parks and returns its id.
func park(t *testing.T, base, tok, path string) string {
	t.Helper()
	req, _ := http.NewRequest("DELETE", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Approval-Justification", "clean up")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var parked map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&parked)
	id, _ := parked["id"].(string)
	if resp.StatusCode != http.StatusAccepted || id == "" {
		t.Fatalf("park %s: %d %v", path, resp.StatusCode, parked)
	}
	return id
}

func TestCLIFiltersWaitOutcomesAndCompletion(t *testing.T) {
	base, calls := startGateway(t)
	alice, _ := mintToken(cliSecret, "alice", []string{"ops"}, "", "", time.Hour)
	carol, _ := mintToken(cliSecret, "carol", []string{"ops"}, "", "", time.Hour)
	bob, _ := mintToken(cliSecret, "bob", []string{"approvers"}, "", "", time.Hour)
	as := func(tok string, args ...string) []string { return append(args, "--server", base, "--token", tok) }
	mine, theirs := park(t, base, alice, "/apps/1"), park(t, base, carol, "/apps/2")

	// Filters narrow what bob receives.
	out, code := runCLI(t, as(bob, "list", "--view", "received", "--requester", "carol")...)
	if code != exitOK || !strings.Contains(out, theirs) || strings.Contains(out, mine) {
		t.Fatalf("list --requester carol (%d):\n%s", code, out)
	}
	for _, filter := range [][]string{{"--policy", "another"}, {"--status", "approved"}, {"--resource", "apps/9"}} {
		out, code := runCLI(t, as(bob, append([]string{"list", "--view", "received"}, filter...)...)...)
		if code != exitOK || strings.Contains(out, mine) || strings.Contains(out, theirs) {
			t.Fatalf("list %v (%d):\n%s", filter, code, out)
		}
	}
	out, code = runCLI(t, as(bob, "list", "--view", "received", "--policy", "default", "--resource", "apps/1")...)
	if code != exitOK || !strings.Contains(out, mine) || strings.Contains(out, theirs) {
		t.Fatalf("list --policy --resource (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, as(alice, "list", "--view", "all")...); code != exitRefused || !strings.Contains(out, "forbidden") {
		t.Fatalf("view=all for a non-admin (%d):\n%s", code, out)
	}

	// Completion offers the ids the caller can act on, with what they are.
	out, _ = runCLI(t, "__complete", "approve", "--server", base, "--token", bob, "")
	if !strings.Contains(out, mine+"\tDELETE /apps/1 (needs_approval)") || !strings.Contains(out, theirs+"\tDELETE /apps/2") {
		t.Fatalf("completing approve's id:\n%s", out)
	}
	if out, _ = runCLI(t, "__complete", "complete", "--server", base, "--token", alice, ""); strings.Contains(out, mine) {
		t.Fatalf("complete offers a request that is not approved:\n%s", out)
	}
	if out, _ = runCLI(t, "__complete", "list", "--status", ""); !strings.Contains(out, "needs_approval") || !strings.Contains(out, "expired") {
		t.Fatalf("completing --status:\n%s", out)
	}

	// wait's exit code by outcome.
	if out, code := runCLI(t, as(alice, "wait", mine, "--timeout", "300ms")...); code != exitTimeout {
		t.Fatalf("wait on an undecided request (%d):\n%s", code, out)
	}
	waited := make(chan int, 1)
	go func() {
		_, code := runCLI(t, as(alice, "wait", mine)...)
		waited <- code
	}()
	time.Sleep(300 * time.Millisecond)
	if out, code := runCLI(t, as(bob, "reject", mine, "--notes", "wrong app")...); code != exitOK {
		t.Fatalf("reject (%d):\n%s", code, out)
	}
	select {
	case code := <-waited:
		if code != exitRejected {
			t.Fatalf("wait on a rejected request exited %d", code)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("wait did not return when the request was rejected")
	}
	if out, code := runCLI(t, as(carol, "cancel", theirs)...); code != exitOK {
		t.Fatalf("cancel (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, as(bob, "wait", theirs, "-o", "json")...); code != exitCanceled || !strings.Contains(out, `"status": "canceled"`) {
		t.Fatalf("wait on a canceled request (%d):\n%s", code, out)
	}
	if out, code := runCLI(t, as(alice, "wait", theirs)...); code != exitRefused || !strings.Contains(out, "not_found") {
		t.Fatalf("wait on someone else's request (%d):\n%s", code, out)
	}
	if calls() != 0 {
		t.Fatalf("%d calls reached the backend", calls())
	}
}

// TestHelpNamesTheBinary runs the real main under another name: help and
// completion speak of the binary as it was called, not of "caddy".
func TestHelpNamesTheBinary(t *testing.T) {
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(t.TempDir(), "approval-gw")
	if err := os.Symlink(self, bin); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) string {
		cmd := exec.Command(bin, args...)
		cmd.Env = append(os.Environ(), runMainEnv+"=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	if out := run("approvals", "--help"); !strings.Contains(out, "approval-gw approvals [command]") || strings.Contains(out, "caddy approvals") {
		t.Fatalf("help:\n%s", out)
	}
	if out := run("completion", "bash"); !strings.Contains(out, "# bash completion for approval-gw") {
		t.Fatalf("completion names %q", strings.SplitN(out, "\n", 2)[0])
	}
}

// runMainEnv makes the test binary run main instead of the tests.
const runMainEnv = "GATEWAY_TEST_RUN_MAIN"

func TestMain(m *testing.M) {
	if os.Getenv(runMainEnv) == "1" {
		main()
		return
	}
	os.Exit(m.Run())
}

// TestCLIAuditExportAndVerify: `audit export` writes the log, `audit
// verify FILE` checks it offline against the gateway's keys (exit 9 and
// the seq when an event was edited), `audit verify` asks the gateway to
// check its store; the log is for admins only.
func TestCLIAuditExportAndVerify(t *testing.T) {
	base, _ := startGateway(t)
	alice, _ := mintToken(cliSecret, "alice", []string{"ops"}, "", "", time.Hour)
	bob, _ := mintToken(cliSecret, "bob", []string{"approvers"}, "", "", time.Hour)
	erin, _ := mintToken(cliSecret, "erin", []string{"auditors"}, "", "", time.Hour)
	as := func(tok string, args ...string) []string { return append(args, "--server", base, "--token", tok) }
	id := parkDelete(t, base+"/apps/7", alice)
	if out, code := runCLI(t, as(bob, "approve", id, "--notes", "ok")...); code != exitOK {
		t.Fatalf("approve (%d): %s", code, out)
	}

	if out, code := runCLI(t, as(alice, "audit", "export")...); code != exitRefused || !strings.Contains(out, "forbidden") {
		t.Fatalf("export by a non-admin (%d): %s", code, out)
	}
	export, code := runCLI(t, as(erin, "audit", "export")...)
	if code != exitOK || strings.Count(export, "\n") != 2 || !strings.Contains(export, `"seq":2`) {
		t.Fatalf("export (%d):\n%s", code, export)
	}
	file := filepath.Join(t.TempDir(), "audit.jsonl")
	if err := os.WriteFile(file, []byte(export), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, as(erin, "audit", "verify", file)...); code != exitOK || !strings.HasPrefix(out, "ok: 2 events") {
		t.Fatalf("verify (%d): %s", code, out)
	}
	if out, code := runCLI(t, as(erin, "audit", "verify")...); code != exitOK || !strings.HasPrefix(out, "ok: 2 events") {
		t.Fatalf("verify online (%d): %s", code, out)
	}
	if err := os.WriteFile(file, []byte(strings.Replace(export, `"notes":"ok"`, `"notes":"ok, called alice"`, 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, code := runCLI(t, as(erin, "audit", "verify", file)...); code != exitTampered || !strings.HasPrefix(out, "TAMPERED at seq 2: its content does not match its hash") {
		t.Fatalf("verify of an edited export (%d): %s", code, out)
	}
}
