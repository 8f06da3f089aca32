package approvalgateway

import (
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddytest"
)

// TestCaddyfileAdapt runs every testdata/caddyfile_adapt/*.caddyfiletest:
// a Caddyfile, a line of dashes, and the JSON it must adapt to.
func TestCaddyfileAdapt(t *testing.T) {
	files, err := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			in, out, ok := strings.Cut(string(data), "\n----------\n")
			if !ok {
				t.Fatal("no ---------- separator")
			}
			if !caddytest.CompareAdapt(t, f, in, "caddyfile", strings.TrimSpace(out)) {
				t.Fatal("adapted JSON differs (diff above)")
			}
		})
	}
}

func TestCaddyfileErrorsNameFileAndLine(t *testing.T) {
	tests := map[string]struct{ block, want string }{
		"unknown option":          {"bogus 1", `unknown option "bogus", at Caddyfile:3`},
		"duplicate option":        {"policies a\n\t\tpolicies b", `duplicate option "policies", at Caddyfile:4`},
		"bad size":                {"max_body lots", "Caddyfile:3"},
		"bad duration":            {"approval_expiry soon", "Caddyfile:3"},
		"unknown store":           {"store redis", `unknown store "redis" (want embedded or etcd), at Caddyfile:3`},
		"etcd without endpoints":  {"store etcd {\n\t\t\tprefix /a/\n\t\t}", "endpoints are required"},
		"two key sources":         {"identity jwt {\n\t\t\tsecret a\n\t\t\tjwks_url http://x\n\t\t}", "exactly one of secret"},
		"unknown jwt option":      {"identity jwt {\n\t\t\tsecrets a\n\t\t}", `unknown identity jwt option "secrets", at Caddyfile:4`},
		"unknown identity source": {"identity saml", `unknown identity source "saml"`},
		"missing argument":        {"policies", "after 'policies', at Caddyfile:3"},
		"bad method_override":     {"method_override allow", `"allow" is not one of reject, judge, at Caddyfile:3`},
		"bad ambiguous_paths":     {"ambiguous_paths normalize", `"normalize" is not one of reject, judge, at Caddyfile:3`},
		"bad site name":           {"site ../rbac", `site "../rbac" must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit, at Caddyfile:3`},
		"directive argument":      {"", ""},
	}
	for name, tc := range tests {
		t.Run(name, func(t *testing.T) {
			cfg := "example.com {\n\tapproval_gateway {\n\t\t" + tc.block + "\n\t}\n}\n"
			if name == "directive argument" {
				cfg = "example.com {\n\tapproval_gateway extra {\n\t}\n}\n"
				tc.want = "Caddyfile:2"
			}
			_, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg), map[string]any{"filename": "Caddyfile"})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

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
