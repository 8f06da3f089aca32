package approvalgateway

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const testSecret = "caddy-test-secret-caddy-test-secret"

// gateway is an in-process Caddy running the approval gateway in front of
// backend; the embedded Client calls it.
type gateway struct {
	t       *testing.T
	base    string
	port    int
	dir     string
	store   string // the store line; default: store embedded <dir>
	logFile string // when set, Caddy logs everything (debug) to this file
	// policies is the policy directory; default the flow's test policies.
	policies string
	backend  *testkit.Backend
	*testkit.Client
}

// newGateway picks the gateway's port and data directory; load starts it.
func newGateway(t *testing.T) *gateway {
	g := &gateway{t: t, port: testkit.Port(t), dir: t.TempDir(), backend: testkit.NewBackend(t)}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.Client = testkit.NewClient(t, g.base)
	return g
}

func (g *gateway) caddyfile(extra string) string {
	global := fmt.Sprintf("http_port %d", g.port)
	if g.logFile != "" {
		global += fmt.Sprintf("\nlog {\n\toutput file %s\n\tlevel DEBUG\n}", g.logFile)
	}
	return caddykit.Site(g.port, global, "\tmetrics /metrics\n"+g.block(extra)+"\n\treverse_proxy "+strings.TrimPrefix(g.backend.URL, "http://"))
}

// block is the test sites' approval_gateway directive, with extra options.
func (g *gateway) block(extra string) string {
	policies := g.policies
	if policies == "" {
		policies = "approvals/testdata/policies"
	}
	return fmt.Sprintf(`	approval_gateway {
		%s
		identity jwt {
			secret %s
			issuer https://idp.test
		}
		policies %s
		admin_groups auditors
		%s
	}`, g.storeLine(), testSecret, policies, extra)
}

func (g *gateway) storeLine() string {
	if g.store != "" {
		return g.store
	}
	return "store embedded " + g.dir
}

func (g *gateway) load(extra string) {
	g.t.Helper()
	caddykit.Load(g.t, g.base, g.caddyfile(extra))
}

func startGateway(t *testing.T, store ...string) *gateway {
	t.Helper()
	g := newGateway(t)
	g.store = strings.Join(store, "\n")
	g.load("")
	return g
}

// token mints a token of the test issuer.
func token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	return testkit.Token(t, testSecret, "https://idp.test", sub, groups...)
}

const api = "/.approvals/api/v1/requests/"

func TestThroughCaddy(t *testing.T) {
	g := startGateway(t)
	alice, bob, eve := token(t, "alice", "ops"), token(t, "bob", "approvers"), token(t, "eve", "sales")

	g.Expect(g.Do("GET", "/apps", "", ""), http.StatusOK, "") // reads pass untouched
	a := g.Expect(g.Do("POST", "/apps", "", `{}`), http.StatusUnauthorized, "unauthenticated")
	if a.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", a.Header.Get("WWW-Authenticate"))
	}
	g.Expect(g.Do("DELETE", "/apps/1", alice, ""), http.StatusPreconditionRequired, "justification_required")
	a = g.Expect(g.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "CHG-1"), http.StatusAccepted, "")
	id := a.Body["id"].(string)
	if a.Header.Get("Location") != api+id {
		t.Fatalf("Location %q", a.Header.Get("Location"))
	}
	if len(g.backend.Mutating()) != 0 {
		t.Fatal("the backend saw a parked call")
	}
	g.Expect(g.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "again"), http.StatusConflict, "pending_exists")
	g.Expect(g.Do("POST", api+id+"/approve", alice, ""), http.StatusForbidden, "self_approval")
	g.Expect(g.Do("POST", api+id+"/approve", token(t, "audrey", "auditors"), ""), http.StatusForbidden, "not_an_approver")
	g.Expect(g.Do("GET", api+id, eve, ""), http.StatusNotFound, "not_found")
	g.Expect(g.Do("POST", api+id+"/approve", bob, `{"notes":"ok"}`, "Content-Type", "application/json"), http.StatusOK, "")

	a = g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	if a.Raw != `{"done":"DELETE /apps/1"}` || a.Header.Get("Approval-Request-Id") != id {
		t.Fatalf("complete answered %s", a.Raw)
	}
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusConflict, "invalid_transition")
	if len(g.backend.Mutating()) != 1 || g.backend.Keyed(id) != 1 {
		t.Fatalf("backend saw %d calls, key %d times", len(g.backend.Mutating()), g.backend.Keyed(id))
	}
	replayed := g.backend.Calls()[len(g.backend.Calls())-1]
	if replayed.Header.Get("Approval-Approved-By") != `"bob"` || replayed.Header.Get("Authorization") != "Bearer "+alice {
		t.Fatalf("replayed headers %v", replayed.Header)
	}

	// Reject with notes, and cancel.
	id = g.Expect(g.Do("POST", "/roles", alice, `{"name":"root"}`, "Approval-Justification", "x"), http.StatusAccepted, "").Body["id"].(string)
	g.Expect(g.Do("POST", api+id+"/reject", bob, ""), http.StatusBadRequest, "notes_required")
	g.Expect(g.Do("POST", api+id+"/reject", bob, `{"notes":"no root roles"}`, "Content-Type", "application/json"), http.StatusOK, "")
	id = g.Expect(g.Do("POST", "/roles", alice, `{"name":"root"}`, "Approval-Justification", "x"), http.StatusAccepted, "").Body["id"].(string)
	g.Expect(g.Do("POST", api+id+"/cancel", bob, ""), http.StatusForbidden, "not_the_requester")
	g.Expect(g.Do("POST", api+id+"/cancel", alice, ""), http.StatusOK, "")
	if len(g.backend.Mutating()) != 1 {
		t.Fatal("a rejected or canceled request reached the backend")
	}

	// The gateway's metrics show at Caddy's metrics endpoint.
	req, _ := http.NewRequest("GET", g.base+"/metrics", nil)
	resp, err := testkit.NewClient(t, "").HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`approval_decisions_total{action="require_approval",policy="default"} 5`,
		`approval_requests_total{status="completed"} 1`,
		`approval_requests_total{status="rejected"} 1`,
		`approval_replays_total{outcome="completed"} 1`,
		`approval_time_to_approval_seconds_count 1`,
		`approval_time_to_completion_seconds_count 1`,
		`approval_pending_requests 0`,
		`approval_store_operation_seconds_count{op="create"}`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s:\n%s", want, grepLines(string(metrics), "approval_decisions"))
		}
	}

	// Body limit from Content-Length.
	big := strings.Repeat("x", 1<<20+1)
	// With Expect: 100-continue the client waits for the answer, which comes
	// from Content-Length before any of the body is read.
	g.Expect(g.Do("POST", "/apps", alice, big, "Approval-Justification", "x", "Expect", "100-continue"), http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestReloadKeepsPendingRequests(t *testing.T) {
	g := startGateway(t)
	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.Expect(g.Do("DELETE", "/devices/9", alice, "", "Approval-Justification", "retire"), http.StatusAccepted, "").Body["id"].(string)

	// Two reloads with changed configurations: the embedded etcd is reused
	// (reopening its directory would deadlock on the file lock).
	g.load("max_justification 500")
	g.load("require_approval_notes")
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusBadRequest, "notes_required")
	g.Expect(g.Do("POST", api+id+"/approve", bob, `{"notes":"after two reloads"}`, "Content-Type", "application/json"), http.StatusOK, "")
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	if g.backend.Keyed(id) != 1 {
		t.Fatalf("replayed %d times", g.backend.Keyed(id))
	}
}

// TestExternalEtcd runs the gateway against an etcd it does not own, through
// the same client code path as the embedded store, under a key prefix.
func TestExternalEtcd(t *testing.T) {
	cli, srv := etcdkit.Start(t)
	g := startGateway(t, "store etcd {\n\t\t\tendpoints "+srv.Endpoint+"\n\t\t\tprefix /team-a/approvals/\n\t\t}")
	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.Expect(g.Do("POST", "/scripts", alice, `{"name":"x"}`, "Approval-Justification", "deploy"), http.StatusAccepted, "").Body["id"].(string)
	resp, err := cli.Get(context.Background(), "/team-a/approvals/requests/"+id)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("record not under the configured prefix: %v %v", resp, err)
	}
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if g.backend.Keyed(id) != 1 {
		t.Fatal("not replayed once")
	}
}

func TestProvisionErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "broken")
	if err := os.MkdirAll(bad, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "p.rego"), []byte("package approval\n\ndecision := {\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, tc := range map[string]struct{ block, want string }{
		"broken policy": {`identity jwt {
			secret ` + testSecret + `
		}
		policies ` + bad, "p.rego:4"},
		"empty secret placeholder": {`identity jwt {
			secret {env.APPROVAL_TEST_UNSET}
		}
		policies approvals/testdata/policies`, "empty secret"},
		"short secret": {`identity jwt {
			secret short
		}
		policies approvals/testdata/policies`, "32 bytes"},
		"no policies": {`identity jwt {
			secret ` + testSecret + `
		}`, "policies"},
	} {
		t.Run(name, func(t *testing.T) {
			cfgText := fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n}\n\nhttp://127.0.0.1:%d {\n\tapproval_gateway {\n\t\tstore embedded %s\n\t\t%s\n\t}\n}\n",
				testkit.Port(t), filepath.Join(dir, strings.ReplaceAll(name, " ", "-")), tc.block)
			cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfgText), nil)
			if err != nil {
				t.Fatal(err)
			}
			err = caddy.Load(cfg, true)
			if err == nil {
				_ = caddy.Stop()
				t.Fatal("loaded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q does not mention %q", err, tc.want)
			}
		})
	}
}

// TestPlaceholderIdentity puts the gateway behind Caddy's basic_auth: the
// identity comes from {http.auth.user.id} and a groups header, for the API
// and for the console (no login of its own).
func TestPlaceholderIdentity(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	g := newGateway(t)
	// Not waited for: the health check is behind basic_auth too.
	caddykit.Load(t, "", caddykit.Site(g.port, "", fmt.Sprintf(`	basic_auth {
		alice %s
		bob %s
	}
	approval_gateway {
		store embedded %s
		identity placeholder {http.auth.user.id} {
			groups_header X-Test-Groups
		}
		policies approvals/testdata/policies
		console
	}
	reverse_proxy %s`, hash, hash, g.dir, strings.TrimPrefix(g.backend.URL, "http://"))))

	call := func(user, method, path string, headers ...string) testkit.Answer {
		if user != "" {
			headers = append(headers, "Authorization", "Basic "+base64.StdEncoding.EncodeToString([]byte(user+":pw")))
		}
		return g.Do(method, path, "", "", headers...)
	}
	testkit.WaitFor(t, func() bool { return call("alice", "GET", "/.approvals/healthz").Status == http.StatusOK })
	if a := call("", "DELETE", "/apps/1"); a.Status != http.StatusUnauthorized {
		t.Fatalf("without basic auth: %d", a.Status)
	}
	a := g.Expect(call("alice", "DELETE", "/apps/1", "Approval-Justification", "cleanup"), http.StatusAccepted, "")
	id := a.Body["id"].(string)
	if a.Body["requester"].(map[string]any)["subject"] != "alice" {
		t.Fatalf("requester from the placeholder: %s", a.Raw)
	}
	// The console knows bob from the request: no login page.
	page := call("bob", "GET", "/.approvals/requests?view=received", "X-Test-Groups", "approvers")
	if page.Status != http.StatusOK || !strings.Contains(page.Raw, `/.approvals/requests/`+id) || !strings.Contains(page.Raw, "bob") {
		t.Fatalf("console for an upstream identity: %d %s", page.Status, page.Raw)
	}
	g.Expect(call("bob", "POST", api+id+"/approve", "X-Test-Groups", "approvers"), http.StatusOK, "")
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
