package approvals

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/internal/etcdtest"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/store"
	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

var secret = []byte("test-secret-test-secret-test-secret!")

// seen is one call that reached the backend.
type seen struct {
	Method, Path, Query string
	Header              http.Header
	Body                string
	// URI is the request target exactly as it arrived.
	URI string
}

// backend is a real HTTP server that records what reaches it.
type backend struct {
	mu    sync.Mutex
	calls []seen
	*httptest.Server
}

func newBackend(t *testing.T) *backend {
	b := &backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.calls = append(b.calls, seen{r.Method, r.URL.Path, r.URL.RawQuery, r.Header.Clone(), string(body), r.RequestURI})
		b.mu.Unlock()
		w.Header().Set("X-Backend", "example")
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"done":"`+r.Method+" "+r.URL.Path+`"}`)
	}))
	t.Cleanup(b.Close)
	return b
}

// mutating returns the calls other than GET.
func (b *backend) mutating() []seen {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []seen
	for _, c := range b.calls {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

// clock is a settable test clock.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

type harness struct {
	t       *testing.T
	svc     *Service
	gw      *httptest.Server
	backend *backend
	clock   *clock
	etcd    *etcdembed.Server
	logs    *observer.ObservedLogs
	opts    Options
	cli     *clientv3.Client
}

// sibling is a second gateway on the same store, as when several gateways
// share one etcd cluster.
func (h *harness) sibling(logger *zap.Logger) *Service {
	h.t.Helper()
	o := h.opts
	o.Logger = logger
	svc, err := New(o)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(svc.StartPolicyWatch(5 * time.Second))
	return svc
}

// proxyTo is a minimal next handler: it forwards to the backend and copies
// the answer back, returning transport errors as the reverse proxy does.
func proxyTo(target string) Next {
	return func(w http.ResponseWriter, r *http.Request) error {
		out, err := http.NewRequestWithContext(r.Context(), r.Method, target+r.URL.RequestURI(), r.Body)
		if err != nil {
			return err
		}
		out.Header = r.Header.Clone()
		out.ContentLength = r.ContentLength
		resp, err := http.DefaultTransport.RoundTrip(out)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		for k, v := range resp.Header {
			w.Header()[k] = v
		}
		w.WriteHeader(resp.StatusCode)
		_, err = io.Copy(w, resp.Body)
		return err
	}
}

func newHarness(t *testing.T, policyDir string, mod func(*Options)) *harness {
	t.Helper()
	cli, srv := etcdtest.Start(t)
	return newHarnessOn(t, cli, srv, policyDir, mod)
}

// newHarnessOn builds a harness on a given etcd.
func newHarnessOn(t *testing.T, cli *clientv3.Client, srv *etcdembed.Server, policyDir string, mod func(*Options)) *harness {
	t.Helper()
	st, err := store.New(cli, store.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.New(identity.Options{Secret: secret, Issuer: "https://idp.test"})
	if err != nil {
		t.Fatal(err)
	}
	if policyDir == "" {
		policyDir = "testdata/policies"
	}
	pol, err := policy.NewReloader(context.Background(), policyDir, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &harness{t: t, backend: newBackend(t), clock: &clock{now: time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)}, etcd: srv, logs: logs, cli: cli}
	o := Options{
		Store: st, Identity: ver, Policies: pol, AdminGroups: []string{"auditors"},
		Clock: h.clock.Now, Logger: zap.New(core),
	}
	if mod != nil {
		mod(&o)
	}
	h.opts = o
	h.svc, err = New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.svc.StartPolicyWatch(5 * time.Second))
	next := proxyTo(h.backend.URL)
	h.gw = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.svc.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(h.gw.Close)
	return h
}

// token mints a real HS256 token. Tokens minted at different times differ,
// which lets tests tell a parked call's token from a complete call's.
func (h *harness) token(sub string, groups ...string) string {
	h.t.Helper()
	c := jwt.MapClaims{"sub": sub, "groups": groups, "iss": "https://idp.test",
		"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": time.Now().String()}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// tokenWith mints a token with the given claims (plus iss, exp, iat).
func (h *harness) tokenWith(c jwt.MapClaims) string {
	h.t.Helper()
	c["iss"], c["exp"], c["iat"] = "https://idp.test", time.Now().Add(time.Hour).Unix(), time.Now().Unix()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(secret)
	if err != nil {
		h.t.Fatal(err)
	}
	return s
}

// result is a decoded answer.
type result struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func (r result) errCode() string {
	e, _ := r.body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

func (r result) str(k string) string { s, _ := r.body[k].(string); return s }

// do sends a request; headers come as name, value pairs.
func (h *harness) do(method, path, token, body string, headers ...string) result {
	h.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, h.gw.URL+path, rd)
	if err != nil {
		h.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		h.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := result{status: resp.StatusCode, header: resp.Header, raw: string(raw)}
	_ = json.Unmarshal(raw, &res.body)
	return res
}

// expect fails the test unless res has the status (and error code).
func (h *harness) expect(res result, status int, code string) result {
	h.t.Helper()
	if res.status != status || res.errCode() != code {
		h.t.Fatalf("got %d %q, want %d %q: %s", res.status, res.errCode(), status, code, res.raw)
	}
	return res
}

func (h *harness) park(tok, method, path, body string) string {
	h.t.Helper()
	res := h.expect(h.do(method, path, tok, body, "Approval-Justification", "ticket CHG-1", "Content-Type", "application/json"), http.StatusAccepted, "")
	return res.str("id")
}

func writePolicy(t *testing.T, rego string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
