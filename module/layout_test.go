package approvalgateway

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
)

// TestHandleBlocksAreGuarded: the directive at site level guards the
// handle blocks below it (it orders itself before handle), and a replay
// goes through the same route to the backend of the stored call's path.
// Ordered before reverse_proxy, it would run after the handle blocks:
// never.
func TestHandleBlocksAreGuarded(t *testing.T) {
	mdm, admin := testkit.NewBackend(t), testkit.NewBackend(t)
	g := newGateway(t)
	g.backend = admin
	caddykit.Load(t, g.base, caddykit.Site(g.port, "", fmt.Sprintf("\thandle /mdm/* {\n\t\treverse_proxy %s\n\t}\n\thandle {\n\t\treverse_proxy %s\n\t}\n",
		strings.TrimPrefix(mdm.URL, "http://"), strings.TrimPrefix(admin.URL, "http://"))+g.block("")))

	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	g.Expect(g.Do("POST", "/mdm/devices/2/wipe", "", `{}`), http.StatusUnauthorized, "unauthenticated")
	g.Expect(g.Do("DELETE", "/apps/1", "", ""), http.StatusUnauthorized, "unauthenticated")
	id := g.Expect(g.Do("POST", "/mdm/devices/2/wipe", alice, `{}`, "Approval-Justification", "stolen"), http.StatusAccepted, "").Body["id"].(string)
	if len(mdm.Mutating())+len(admin.Mutating()) != 0 {
		t.Fatal("a judged call under a handle block reached a backend unjudged")
	}
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusCreated, "")
	if mdm.Keyed(id) != 1 || len(admin.Mutating()) != 0 {
		t.Fatalf("the replay reached mdm %d times and the other backend %d times", mdm.Keyed(id), len(admin.Mutating()))
	}
	// Reads under either block still pass untouched.
	g.Expect(g.Do("GET", "/apps", "", ""), http.StatusOK, "")
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
