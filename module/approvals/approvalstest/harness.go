// Package approvalstest runs the request flow for tests: a real
// approvals.Service on a real embedded etcd, the real policy engine and
// really signed tokens, in front of a backend that records what reaches
// it. The flow's own tests, the console's and the notifier's use it.
package approvalstest

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/store"
	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// Secret signs the harness's tokens; Issuer issues them.
const (
	Secret = "test-secret-test-secret-test-secret!"
	Issuer = "https://idp.test"
)

// Policies is the directory of the flow's test policies: every judged
// call needs one approval from "approvers".
var Policies = func() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "policies")
}()

// Options are a service's dependencies and settings, for a harness to
// build it from.
type Options struct {
	approvals.Deps
	approvals.Settings
}

// Harness is a gateway on a test server: Svc serves GW, in front of
// Backend, with Clock as its clock and its logs in Logs. The embedded
// Client calls GW. Every call to the approval API through GW, and its
// answer, is checked against the API's OpenAPI document (openapi.go).
type Harness struct {
	T       *testing.T
	Svc     *approvals.Service
	GW      *httptest.Server
	Backend *testkit.Backend
	Clock   *testkit.Clock
	Etcd    *etcdembed.Server
	Cli     *clientv3.Client
	Logs    *observer.ObservedLogs
	// Opts are the options Svc was built from.
	Opts Options
	*testkit.Client

	contract     *contract // what every API call through GW is checked against
	mu           sync.Mutex
	undocumented map[string]bool // calls made on purpose outside the document
}

// New builds a harness on an etcd of its own, with the policies in
// policyDir (Policies when empty); mod adjusts the options.
func New(t *testing.T, policyDir string, mod func(*Options)) *Harness {
	t.Helper()
	cli, srv := etcdkit.Start(t)
	return NewOn(t, cli, srv, policyDir, mod)
}

// NewOn builds a harness on a given etcd.
func NewOn(t *testing.T, cli *clientv3.Client, srv *etcdembed.Server, policyDir string, mod func(*Options)) *Harness {
	t.Helper()
	st, err := store.New(cli, store.Options{Timeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	ver, err := identity.New(identity.Options{Secret: []byte(Secret), Issuer: Issuer})
	if err != nil {
		t.Fatal(err)
	}
	if policyDir == "" {
		policyDir = Policies
	}
	pol, err := policy.NewReloader(context.Background(), policyDir, "", nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	core, logs := observer.New(zap.DebugLevel)
	h := &Harness{T: t, Backend: testkit.NewBackend(t), Clock: testkit.NewClock(time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)),
		Etcd: srv, Logs: logs, Cli: cli}
	o := Options{Deps: approvals.Deps{Store: st, Identity: ver, Policies: pol, Clock: h.Clock.Now, Logger: zap.New(core)},
		Settings: approvals.Settings{AdminGroups: []string{"auditors"}}}
	if mod != nil {
		mod(&o)
	}
	h.Opts = o
	h.Svc = start(t, o)
	if h.contract, err = contractOf(h.Svc); err != nil {
		t.Fatal(err)
	}
	next := ProxyTo(h.Backend.URL)
	h.GW = httptest.NewServer(h.checked(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Svc.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	})))
	t.Cleanup(h.GW.Close)
	h.Client = testkit.NewClient(t, h.GW.URL)
	return h
}

// Before serves Svc in front of another backend (a real API, not the
// recording Backend) and returns a client of that gateway.
func (h *Harness) Before(backend string) *testkit.Client {
	h.T.Helper()
	next := ProxyTo(backend)
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Svc.ServeHTTP(w, r, next); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	h.T.Cleanup(gw.Close)
	return testkit.NewClient(h.T, gw.URL)
}

// Sibling is a second gateway on the same store, as when several gateways
// share one etcd cluster, logging to logger.
func (h *Harness) Sibling(logger *zap.Logger) *approvals.Service {
	h.T.Helper()
	o := h.Opts
	o.Logger = logger
	return start(h.T, o)
}

// start builds a service and waits until its runtime policies are loaded.
func start(t *testing.T, o Options) *approvals.Service {
	t.Helper()
	svc, err := approvals.New(o.Deps, o.Settings)
	if err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, svc.RunPolicyWatch)
	testkit.Run(t, svc.RunWatches)
	testkit.WaitFor(t, svc.Ready)
	return svc
}

// ProxyTo is a minimal next handler: it forwards to target and copies the
// answer back, returning transport errors as the reverse proxy does.
func ProxyTo(target string) approvals.Next {
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

// Token mints a token of the harness's issuer for sub and groups.
func (h *Harness) Token(sub string, groups ...string) string {
	h.T.Helper()
	return testkit.Token(h.T, Secret, Issuer, sub, groups...)
}

// TokenWith mints a token of the harness's issuer with claims.
func (h *Harness) TokenWith(claims jwt.MapClaims) string {
	h.T.Helper()
	claims["iss"] = Issuer
	return testkit.Claims(h.T, Secret, claims)
}

// Park sends a call that the policy parks, with a justification and a
// JSON type, and returns the request id.
func (h *Harness) Park(tok, method, path, body string) string {
	h.T.Helper()
	return h.Expect(h.Do(method, path, tok, body, "Approval-Justification", "ticket CHG-1", "Content-Type", "application/json"), http.StatusAccepted, "").Str("id")
}

// Record reads request id as tok.
func (h *Harness) Record(tok, id string) testkit.Answer {
	h.T.Helper()
	return h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, tok, ""), http.StatusOK, "")
}

// Approve approves request id as tok.
func (h *Harness) Approve(tok, id string) testkit.Answer {
	h.T.Helper()
	return h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", tok, ""), http.StatusOK, "")
}

// HistoryActions is a record's history as "actor:action" words.
func HistoryActions(res testkit.Answer) string {
	var out []string
	for _, e := range res.Body["history"].([]any) {
		m := e.(map[string]any)
		out = append(out, m["actor"].(string)+":"+m["action"].(string))
	}
	return strings.Join(out, " ")
}
