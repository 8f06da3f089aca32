package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
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

func TestCLIWholeFlow(t *testing.T) {
	base, calls := startGateway(t)
	alice, _ := mintToken(cliSecret, "alice", []string{"ops"}, "", "", time.Hour)
	bob, _ := mintToken(cliSecret, "bob", []string{"approvers"}, "", "", time.Hour)
	as := func(tok string, args ...string) []string { return append(args, "--server", base, "--token", tok) }

	// Alice parks a change through the gateway.
	req, _ := http.NewRequest("DELETE", base+"/apps/7", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
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

	// Bob watches the events in the background.
	watched := make(chan string, 1)
	go func() {
		out, _ := runCLI(t, as(bob, "watch", "--count", "2", "-o", "json")...)
		watched <- out
	}()
	time.Sleep(300 * time.Millisecond)

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
	out, code = runCLI(t, as(bob, "approve", id, "--notes", "fine")...)
	if code != exitOK || !strings.Contains(out, "is approved") {
		t.Fatalf("approve (%d):\n%s", code, out)
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
