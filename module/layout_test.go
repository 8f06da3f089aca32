package approvalgateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
)

// TestHandleBlocksAreGuarded: the directive at site level guards the
// handle blocks below it (it orders itself before handle), and a replay
// goes through the same route to the backend of the stored call's path.
// Ordered before reverse_proxy, it would run after the handle blocks:
// never.
func TestHandleBlocksAreGuarded(t *testing.T) {
	mdm, admin := newCounter(t), newCounter(t)
	g := &gateway{t: t, port: freePort(t), dir: t.TempDir(), backend: admin}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	cfg := fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	http_port %d
}

http://127.0.0.1:%d {
	handle /mdm/* {
		reverse_proxy %s
	}
	handle {
		reverse_proxy %s
	}
	approval_gateway {
		store embedded %s
		identity jwt {
			secret %s
			issuer https://idp.test
		}
		policies approvals/testdata/policies
	}
}
`, g.port, g.port, strings.TrimPrefix(mdm.URL, "http://"), strings.TrimPrefix(admin.URL, "http://"), g.dir, testSecret)
	loadCaddyfile(t, g.base, cfg)
	t.Cleanup(func() { _ = caddy.Stop() })

	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	g.want(g.call("POST", "/mdm/devices/2/wipe", "", `{}`), http.StatusUnauthorized, "unauthenticated")
	g.want(g.call("DELETE", "/apps/1", "", ""), http.StatusUnauthorized, "unauthenticated")
	id := g.want(g.call("POST", "/mdm/devices/2/wipe", alice, `{}`, "Approval-Justification", "stolen"), http.StatusAccepted, "").body["id"].(string)
	if mdm.mutating()+admin.mutating() != 0 {
		t.Fatal("a judged call under a handle block reached a backend unjudged")
	}
	g.want(g.call("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if mdm.keys[id] != 1 || admin.mutating() != 0 {
		t.Fatalf("the replay reached mdm %d times and the other backend %d times", mdm.keys[id], admin.mutating())
	}
	// Reads under either block still pass untouched.
	g.want(g.call("GET", "/apps", "", ""), http.StatusCreated, "")
}

// TestReplayHasItsOwnPlaceholders: a rewrite after the gateway that uses
// placeholders rewrites the replayed call, not the complete call the replay
// runs within.
func TestReplayHasItsOwnPlaceholders(t *testing.T) {
	backend := newCounter(t)
	g := &gateway{t: t, port: freePort(t), dir: t.TempDir(), backend: backend}
	g.base = fmt.Sprintf("http://127.0.0.1:%d", g.port)
	loadCaddyfile(t, g.base, fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
}

http://127.0.0.1:%d {
	approval_gateway {
		store embedded %s
		identity jwt {
			secret %s
			issuer https://idp.test
		}
		policies approvals/testdata/policies
	}
	handle {
		rewrite * /v1{uri}
		reverse_proxy %s {
			header_up X-Replayed-Path {path}
		}
	}
}
`, g.port, g.dir, testSecret, strings.TrimPrefix(backend.URL, "http://")))
	t.Cleanup(func() { _ = caddy.Stop() })

	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.want(g.call("DELETE", "/apps/1?force=1", alice, "", "Approval-Justification", "retire"), http.StatusAccepted, "").body["id"].(string)
	g.want(g.call("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.want(g.call("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	backend.mu.Lock()
	defer backend.mu.Unlock()
	last := backend.calls[len(backend.calls)-1]
	if last.URL.RequestURI() != "/v1/apps/1?force=1" || last.Header.Get("X-Replayed-Path") != "/v1/apps/1" {
		t.Fatalf("the replay reached %s with X-Replayed-Path %q", last.URL.RequestURI(), last.Header.Get("X-Replayed-Path"))
	}
}
