package approvalgateway

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

const testSecret = "caddy-test-secret-caddy-test-secret"

// counter is a backend that counts the calls it receives by Idempotency-Key.
type counter struct {
	mu    sync.Mutex
	calls []*http.Request
	keys  map[string]int
	*httptest.Server
}

func newCounter(t *testing.T) *counter {
	c := &counter{keys: map[string]int{}}
	c.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		c.mu.Lock()
		c.calls = append(c.calls, r)
		if k := r.Header.Get("Idempotency-Key"); k != "" {
			c.keys[k]++
		}
		c.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusCreated)
		fmt.Fprintf(w, `{"backend":"%s %s","body":%q}`, r.Method, r.URL.Path, body)
	}))
	t.Cleanup(c.Close)
	return c
}

func (c *counter) mutating() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, r := range c.calls {
		if r.Method != http.MethodGet {
			n++
		}
	}
	return n
}

func freePort(t *testing.T) int { return testkit.Port(t) }

// gateway is an in-process Caddy running the approval gateway.
type gateway struct {
	t       *testing.T
	base    string
	port    int
	dir     string
	store   string // the store line; default: store embedded <dir>
	logFile string // when set, Caddy logs everything (debug) to this file
	backend *counter
}

func (g *gateway) caddyfile(extra string) string {
	logging := ""
	if g.logFile != "" {
		logging = fmt.Sprintf("\n\tlog {\n\t\toutput file %s\n\t\tlevel DEBUG\n\t}", g.logFile)
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	http_port %d%s
}

http://127.0.0.1:%d {
	metrics /metrics
	approval_gateway {
		%s
		identity jwt {
			secret %s
			issuer https://idp.test
		}
		policies approvals/testdata/policies
		admin_groups auditors
		%s
	}
	reverse_proxy %s
}
`, g.port, logging, g.port, g.storeLine(), testSecret, extra, strings.TrimPrefix(g.backend.URL, "http://"))
}

func (g *gateway) storeLine() string {
	if g.store != "" {
		return g.store
	}
	return "store embedded " + g.dir
}

func (g *gateway) load(extra string) {
	g.t.Helper()
	loadCaddyfile(g.t, g.base, g.caddyfile(extra))
}

// loadCaddyfile adapts a Caddyfile and runs it in this process (replacing
// what runs), and waits until the gateway at base is ready.
func loadCaddyfile(t *testing.T, base, text string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	testkit.WaitHealthy(t, base+"/.approvals/healthz")
}

func startGateway(t *testing.T, store ...string) *gateway {
	t.Helper()
	g := &gateway{t: t, port: freePort(t), dir: t.TempDir(), backend: newCounter(t), store: strings.Join(store, "\n")}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	g.load("")
	t.Cleanup(func() { _ = caddy.Stop() })
	return g
}

func token(t *testing.T, sub string, groups ...string) string {
	t.Helper()
	c := jwt.MapClaims{"sub": sub, "groups": groups, "iss": "https://idp.test",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(testSecret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

type answer struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (a answer) code() string {
	e, _ := a.body["error"].(map[string]any)
	s, _ := e["code"].(string)
	return s
}

func (g *gateway) call(method, path, tok, body string, headers ...string) answer {
	g.t.Helper()
	req, err := http.NewRequest(method, g.base+path, strings.NewReader(body))
	if err != nil {
		g.t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := noKeepAlive.Do(req)
	if err != nil {
		g.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &a.body)
	return a
}

func (g *gateway) want(a answer, status int, code string) answer {
	g.t.Helper()
	if a.status != status || a.code() != code {
		g.t.Fatalf("got %d %q, want %d %q: %s", a.status, a.code(), status, code, a.raw)
	}
	return a
}

const api = "/.approvals/api/v1/requests/"

// noKeepAlive opens a connection per call: a config reload closes the idle
// connections of the old server, which a POST must not be sent on.
var noKeepAlive = &http.Client{Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 10 * time.Second}, Timeout: 30 * time.Second}

func TestThroughCaddy(t *testing.T) {
	g := startGateway(t)
	alice, bob, eve := token(t, "alice", "ops"), token(t, "bob", "approvers"), token(t, "eve", "sales")

	g.want(g.call("GET", "/apps", "", ""), http.StatusCreated, "") // reads pass untouched
	a := g.want(g.call("POST", "/apps", "", `{}`), http.StatusUnauthorized, "unauthenticated")
	if a.header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", a.header.Get("WWW-Authenticate"))
	}
	g.want(g.call("DELETE", "/apps/1", alice, ""), http.StatusPreconditionRequired, "justification_required")
	a = g.want(g.call("DELETE", "/apps/1", alice, "", "Approval-Justification", "CHG-1"), http.StatusAccepted, "")
	id := a.body["id"].(string)
	if a.header.Get("Location") != api+id {
		t.Fatalf("Location %q", a.header.Get("Location"))
	}
	if g.backend.mutating() != 0 {
		t.Fatal("the backend saw a parked call")
	}
	g.want(g.call("DELETE", "/apps/1", alice, "", "Approval-Justification", "again"), http.StatusConflict, "pending_exists")
	g.want(g.call("POST", api+id+"/approve", alice, ""), http.StatusForbidden, "self_approval")
	g.want(g.call("POST", api+id+"/approve", token(t, "audrey", "auditors"), ""), http.StatusForbidden, "not_an_approver")
	g.want(g.call("GET", api+id, eve, ""), http.StatusNotFound, "not_found")
	g.want(g.call("POST", api+id+"/approve", bob, `{"notes":"ok"}`), http.StatusOK, "")

	a = g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if a.raw != `{"backend":"DELETE /apps/1","body":""}` || a.header.Get("Approval-Request-Id") != id {
		t.Fatalf("complete answered %s", a.raw)
	}
	g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusConflict, "invalid_transition")
	if g.backend.mutating() != 1 || g.backend.keys[id] != 1 {
		t.Fatalf("backend saw %d calls, key %d times", g.backend.mutating(), g.backend.keys[id])
	}
	replayed := g.backend.calls[len(g.backend.calls)-1]
	if replayed.Header.Get("Approval-Approved-By") != "bob" || replayed.Header.Get("Authorization") != "Bearer "+alice {
		t.Fatalf("replayed headers %v", replayed.Header)
	}

	// Reject with notes, and cancel.
	id = g.want(g.call("POST", "/roles", alice, `{"name":"root"}`, "Approval-Justification", "x"), http.StatusAccepted, "").body["id"].(string)
	g.want(g.call("POST", api+id+"/reject", bob, ""), http.StatusBadRequest, "notes_required")
	g.want(g.call("POST", api+id+"/reject", bob, `{"notes":"no root roles"}`), http.StatusOK, "")
	id = g.want(g.call("POST", "/roles", alice, `{"name":"root"}`, "Approval-Justification", "x"), http.StatusAccepted, "").body["id"].(string)
	g.want(g.call("POST", api+id+"/cancel", bob, ""), http.StatusForbidden, "not_the_requester")
	g.want(g.call("POST", api+id+"/cancel", alice, ""), http.StatusOK, "")
	if g.backend.mutating() != 1 {
		t.Fatal("a rejected or canceled request reached the backend")
	}

	// The gateway's metrics show at Caddy's metrics endpoint.
	req, _ := http.NewRequest("GET", g.base+"/metrics", nil)
	resp, err := noKeepAlive.Do(req)
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
	g.want(g.call("POST", "/apps", alice, big, "Approval-Justification", "x", "Expect", "100-continue"), http.StatusRequestEntityTooLarge, "body_too_large")
}

func TestReloadKeepsPendingRequests(t *testing.T) {
	g := startGateway(t)
	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.want(g.call("DELETE", "/devices/9", alice, "", "Approval-Justification", "retire"), http.StatusAccepted, "").body["id"].(string)

	// Two reloads with changed configurations: the embedded etcd is reused
	// (reopening its directory would deadlock on the file lock).
	g.load("max_justification 500")
	g.load("require_approval_notes")
	g.want(g.call("POST", api+id+"/approve", bob, ""), http.StatusBadRequest, "notes_required")
	g.want(g.call("POST", api+id+"/approve", bob, `{"notes":"after two reloads"}`), http.StatusOK, "")
	g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if g.backend.keys[id] != 1 {
		t.Fatalf("replayed %d times", g.backend.keys[id])
	}
}

// TestExternalEtcd runs the gateway against an etcd it does not own, through
// the same client code path as the embedded store, under a key prefix.
func TestExternalEtcd(t *testing.T) {
	cli, srv := testkit.Etcd(t)
	g := startGateway(t, "store etcd {\n\t\t\tendpoints "+srv.Endpoint+"\n\t\t\tprefix /team-a/approvals/\n\t\t}")
	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.want(g.call("POST", "/scripts", alice, `{"name":"x"}`, "Approval-Justification", "deploy"), http.StatusAccepted, "").body["id"].(string)
	resp, err := cli.Get(context.Background(), "/team-a/approvals/requests/"+id)
	if err != nil || len(resp.Kvs) != 1 {
		t.Fatalf("record not under the configured prefix: %v %v", resp, err)
	}
	g.want(g.call("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if g.backend.keys[id] != 1 {
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
				freePort(t), filepath.Join(dir, strings.ReplaceAll(name, " ", "-")), tc.block)
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
	g := &gateway{t: t, port: freePort(t), dir: t.TempDir(), backend: newCounter(t)}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
}

http://127.0.0.1:%d {
	basic_auth {
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
	reverse_proxy %s
}
`, g.port, hash, hash, g.dir, strings.TrimPrefix(g.backend.URL, "http://"))
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(adapted, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })

	call := func(user, method, path string, headers ...string) answer {
		req, _ := http.NewRequest(method, g.base+path, nil)
		if user != "" {
			req.SetBasicAuth(user, "pw")
		}
		for i := 0; i+1 < len(headers); i += 2 {
			req.Header.Set(headers[i], headers[i+1])
		}
		resp, err := noKeepAlive.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		a := answer{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
		_ = json.Unmarshal(raw, &a.body)
		return a
	}
	testkit.WaitFor(t, func() bool { return call("alice", "GET", "/.approvals/healthz").status == http.StatusOK })
	if a := call("", "DELETE", "/apps/1"); a.status != http.StatusUnauthorized {
		t.Fatalf("without basic auth: %d", a.status)
	}
	a := g.want(call("alice", "DELETE", "/apps/1", "Approval-Justification", "cleanup"), http.StatusAccepted, "")
	id := a.body["id"].(string)
	if a.body["requester"].(map[string]any)["subject"] != "alice" {
		t.Fatalf("requester from the placeholder: %s", a.raw)
	}
	// The console knows bob from the request: no login page.
	page := call("bob", "GET", "/.approvals/requests?view=received", "X-Test-Groups", "approvers")
	if page.status != http.StatusOK || !strings.Contains(page.raw, `/.approvals/requests/`+id) || !strings.Contains(page.raw, "bob") {
		t.Fatalf("console for an upstream identity: %d %s", page.status, page.raw)
	}
	g.want(call("bob", "POST", api+id+"/approve", "X-Test-Groups", "approvers"), http.StatusOK, "")
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
