package approvalgateway

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

func init() {
	caddy.RegisterModule(eventRecorder{})
}

// recorded holds the Caddy events the recorder saw.
var recorded struct {
	sync.Mutex
	events []string
}

// eventRecorder is a Caddy events handler for the tests: it records the
// name and data of each event.
type eventRecorder struct{}

func (eventRecorder) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{ID: "events.handlers.approval_test_recorder", New: func() caddy.Module { return new(eventRecorder) }}
}

func (eventRecorder) Handle(_ context.Context, e caddy.Event) error {
	recorded.Lock()
	defer recorded.Unlock()
	recorded.events = append(recorded.events, fmt.Sprintf("%s %v %v", e.Name(), e.Data["status"], e.Data["policy"]))
	return nil
}

// TestCaddyEventsAndPlaceholders: each decision and change emits a Caddy
// event, and sets {http.approval.*} placeholders that other handlers (here
// header, in access logs log_append) can use.
func TestCaddyEventsAndPlaceholders(t *testing.T) {
	g := newGateway(t)
	text := strings.Replace(g.caddyfile(""), "\tmetrics /metrics\n", "\theader >X-Approval-Id {http.approval.id}\n\theader >X-Approval-Status {http.approval.status}\n", 1)
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), nil)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	if err := json.Unmarshal(adapted, &cfg); err != nil {
		t.Fatal(err)
	}
	cfg["apps"].(map[string]any)["events"] = map[string]any{"subscriptions": []any{map[string]any{
		"events": []string{"approval_parked", "approval_approved", "approval_completed", "approval_decided"}, "handlers": []any{map[string]any{"handler": "approval_test_recorder"}}}}}
	b, _ := json.Marshal(cfg)
	if err := caddy.Load(b, true); err != nil {
		t.Fatal(err)
	}
	testkit.WaitHealthy(t, g.base+"/.approvals/healthz")
	t.Cleanup(func() { _ = caddy.Stop() })
	recorded.Lock()
	recorded.events = nil
	recorded.Unlock()

	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	a := g.Expect(g.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "x"), http.StatusAccepted, "")
	id := a.Body["id"].(string)
	if a.Header.Get("X-Approval-Id") != id || a.Header.Get("X-Approval-Status") != "needs_approval" {
		t.Fatalf("placeholders: %v", a.Header)
	}
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	c := g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	// The answer is the backend's, written during the replay: the request
	// was completing then (an access log, written after, sees completed).
	if c.Header.Get("X-Approval-Id") != id || c.Header.Get("X-Approval-Status") != "completing" {
		t.Fatalf("placeholders after complete: %v", c.Header)
	}
	recorded.Lock()
	defer recorded.Unlock()
	want := "approval_parked needs_approval default|approval_approved approved default|approval_completed completed default"
	if got := strings.Join(recorded.events, "|"); got != want {
		t.Fatalf("Caddy events\n got %s\nwant %s", got, want)
	}
}

// TestReplayHasItsOwnPlaceholders: a rewrite after the gateway that uses
// placeholders rewrites the replayed call, not the complete call the replay
// runs within.
func TestReplayHasItsOwnPlaceholders(t *testing.T) {
	backend := testkit.NewBackend(t)
	g := newGateway(t)
	g.backend = backend
	caddykit.Load(t, g.base, caddykit.Site(g.port, "", g.block("")+fmt.Sprintf(`
	handle {
		rewrite * /v1{uri}
		reverse_proxy %s {
			header_up X-Replayed-Path {path}
		}
	}`, strings.TrimPrefix(backend.URL, "http://"))))

	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.Expect(g.Do("DELETE", "/apps/1?force=1", alice, "", "Approval-Justification", "retire"), http.StatusAccepted, "").Body["id"].(string)
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	calls := backend.Calls()
	last := calls[len(calls)-1]
	if last.URI != "/v1/apps/1?force=1" || last.Header.Get("X-Replayed-Path") != "/v1/apps/1" {
		t.Fatalf("the replay reached %s with X-Replayed-Path %q", last.URI, last.Header.Get("X-Replayed-Path"))
	}
}
