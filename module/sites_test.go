package approvalgateway

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"golang.org/x/crypto/bcrypt"
)

// twoSites is a Caddyfile of two site blocks, each with its own backend,
// whose approval_gateway handlers share one embedded store and prefix.
// siteA and siteB are their site options ("" for none).
func twoSites(t *testing.T, dir string, a, b *gateway, siteA, siteB string) string {
	block := func(g *gateway, site string) string {
		opt := ""
		if site != "" {
			opt = "site " + site
		}
		return fmt.Sprintf("http://127.0.0.1:%d {\n%s\n\treverse_proxy %s\n}\n", g.port, g.block(opt), strings.TrimPrefix(g.backend.URL, "http://"))
	}
	a.store, b.store = "store embedded "+dir, "store embedded "+dir
	return "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n}\n\n" + block(a, siteA) + "\n" + block(b, siteB)
}

// TestRequestsBelongToTheirSite: two handlers on one store and prefix, as
// sites "intune" and "rbac". A request parked and approved at one is
// absent at the other: reading, approving, cancelling or completing it
// there is 404, lists and the event stream do not show it, and it cannot
// be replayed to the other site's backend. At its own site it completes,
// its record names the site, and its attestation carries it as "aud".
func TestRequestsBelongToTheirSite(t *testing.T) {
	a, b := newGateway(t), newGateway(t)
	caddykit.Load(t, a.base, twoSites(t, t.TempDir(), a, b, "intune", "rbac"))
	testkit.WaitHealthy(t, b.base+"/.approvals/healthz")
	alice, bob, audrey := token(t, "alice", "ops"), token(t, "bob", "approvers"), token(t, "audrey", "auditors")

	id := a.Expect(a.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "CHG-1"), http.StatusAccepted, "").Str("id")
	if rec := a.Expect(a.Do("GET", api+id, alice, ""), http.StatusOK, ""); rec.Str("site") != "intune" {
		t.Fatalf("the record's site: %s", rec.Raw)
	}
	a.Expect(a.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")

	for _, who := range []string{alice, bob, audrey} {
		b.Expect(b.Do("GET", api+id, who, ""), http.StatusNotFound, "not_found")
		b.Expect(b.Do("GET", api+id+"/preview", who, ""), http.StatusNotFound, "not_found")
		for _, view := range []string{"mine", "received", "all"} {
			list := b.Do("GET", "/.approvals/api/v1/requests?view="+view, who, "")
			if strings.Contains(list.Raw, id) {
				t.Fatalf("site rbac lists intune's request (view=%s): %s", view, list.Raw)
			}
		}
	}
	b.Expect(b.Do("POST", api+id+"/approve", token(t, "carol", "approvers"), ""), http.StatusNotFound, "not_found")
	b.Expect(b.Do("POST", api+id+"/cancel", alice, ""), http.StatusNotFound, "not_found")
	b.Expect(b.Do("POST", api+id+"/complete", alice, ""), http.StatusNotFound, "not_found")
	if n := len(b.backend.Mutating()); n != 0 {
		t.Fatalf("site rbac's backend received %d calls", n)
	}
	// The same resource parks at the other site: its pending request is
	// another site's, and no 409 names it.
	other := b.Expect(b.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "CHG-2"), http.StatusAccepted, "").Str("id")
	if other == id {
		t.Fatal("one id for two sites' requests")
	}

	res := a.Expect(a.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	if res.Raw != `{"done":"DELETE /apps/1"}` || len(a.backend.Mutating()) != 1 || len(b.backend.Mutating()) != 0 {
		t.Fatalf("complete at its own site: %s; backends %d and %d", res.Raw, len(a.backend.Mutating()), len(b.backend.Mutating()))
	}
	claims := attestationClaims(t, a.backend.Mutating()[0].Header.Get("Approval-Attestation"))
	if aud := fmt.Sprint(claims["aud"]); aud != "intune" && aud != "[intune]" {
		t.Fatalf("the attestation's aud is %v, want the site", claims["aud"])
	}
	// The audit log of one site is not the other's.
	if log := b.Do("GET", "/.approvals/api/v1/audit", audrey, ""); strings.Contains(log.Raw, id) {
		t.Fatalf("site rbac's audit log holds intune's request: %s", log.Raw)
	}
}

// TestSitesMustBeNamedApart: two handlers of one configuration on one
// store and prefix under the same site (both unnamed, or named alike)
// fail provisioning with an error that says so; distinct names, or
// distinct prefixes, load; a reload of the same configuration (old and new
// handlers alive at once) is no conflict.
func TestSitesMustBeNamedApart(t *testing.T) {
	for _, names := range [][2]string{{"", ""}, {"shared", "shared"}, {"", "default"}} {
		a, b := newGateway(t), newGateway(t)
		text := twoSites(t, t.TempDir(), a, b, names[0], names[1])
		cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
		if err != nil {
			t.Fatal(err)
		}
		err = caddy.Load(cfg, true)
		_ = caddy.Stop()
		if err == nil || !strings.Contains(err.Error(), "site") || !strings.Contains(err.Error(), "same store and prefix") {
			t.Fatalf("sites %q: %v", names, err)
		}
	}
	a, b := newGateway(t), newGateway(t)
	text := twoSites(t, t.TempDir(), a, b, "", "rbac")
	caddykit.Load(t, a.base, text)
	alice := token(t, "alice", "ops")
	id := a.Expect(a.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "CHG-1"), http.StatusAccepted, "").Str("id")
	caddykit.Load(t, a.base, text) // a reload
	a.Expect(a.Do("GET", api+id, alice, ""), http.StatusOK, "")
	b.Expect(b.Do("GET", api+id, alice, ""), http.StatusNotFound, "not_found")
}

// attestationClaims decodes (without verifying: the attestation tests
// verify) the claims of an attestation.
func attestationClaims(t *testing.T, jws string) map[string]any {
	t.Helper()
	parts := strings.Split(jws, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWS: %q", jws)
	}
	b, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		t.Fatal(err)
	}
	return c
}

// TestSitesKeepConsoleAndEventsApart: another site's console does not show
// a request (its page is not found, its lists leave it out) and its event
// stream does not carry the request's events, while the request's own
// site shows and streams them.
func TestSitesKeepConsoleAndEventsApart(t *testing.T) {
	hash, err := bcrypt.GenerateFromPassword([]byte("pw"), bcrypt.MinCost)
	if err != nil {
		t.Fatal(err)
	}
	a, b := newGateway(t), newGateway(t)
	dir := t.TempDir()
	site := func(g *gateway, name string) string {
		return fmt.Sprintf(`http://127.0.0.1:%d {
	basic_auth {
		alice %s
		bob %s
	}
	approval_gateway {
		store embedded %s
		site %s
		identity placeholder {http.auth.user.id} {
			groups_header X-Test-Groups
		}
		policies approvals/testdata/policies
		admin_groups auditors
		console
	}
	reverse_proxy %s
}
`, g.port, hash, hash, dir, name, strings.TrimPrefix(g.backend.URL, "http://"))
	}
	caddykit.Load(t, "", "{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n}\n\n"+site(a, "intune")+"\n"+site(b, "rbac"))
	as := func(user string, groups ...string) []string {
		h := []string{"Authorization", "Basic " + base64.StdEncoding.EncodeToString([]byte(user+":pw"))}
		if len(groups) > 0 {
			h = append(h, "X-Test-Groups", strings.Join(groups, ","))
		}
		return h
	}
	for _, g := range []*gateway{a, b} {
		testkit.WaitFor(t, func() bool { return g.Do("GET", "/.approvals/healthz", "", "", as("alice")...).Status == http.StatusOK })
	}
	id := a.Expect(a.Do("DELETE", "/apps/1", "", "", append(as("alice"), "Approval-Justification", "CHG-1")...), http.StatusAccepted, "").Str("id")

	page := "/.approvals/requests/" + id
	if p := a.Do("GET", page, "", "", as("bob", "approvers", "auditors")...); p.Status != http.StatusOK || !strings.Contains(p.Raw, id) {
		t.Fatalf("its own site's console: %d", p.Status)
	}
	if p := b.Do("GET", page, "", "", as("bob", "approvers", "auditors")...); p.Status != http.StatusNotFound || strings.Contains(p.Raw, "/apps/1") {
		t.Fatalf("the other site's console shows the request: %d %s", p.Status, p.Raw)
	}
	for _, view := range []string{"mine", "received", "all"} {
		for who, g := range map[string]*gateway{"alice": b, "bob": b} {
			if p := g.Do("GET", "/.approvals/requests?view="+view, "", "", as(who, "approvers", "auditors")...); strings.Contains(p.Raw, id) {
				t.Fatalf("the other site's console lists it (view=%s, %s)", view, who)
			}
		}
	}
	events := func(g *gateway) string {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "GET", g.base+"/.approvals/api/v1/events", nil)
		for h := as("bob", "approvers", "auditors"); len(h) > 1; h = h[2:] {
			req.Header.Set(h[0], h[1])
		}
		req.Header.Set("Last-Event-ID", "1-0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		got, _ := io.ReadAll(resp.Body) // until the timeout ends the stream
		return string(got)
	}
	if got := events(a); !strings.Contains(got, id) {
		t.Fatalf("its own site's event stream lacks the request: %s", got)
	}
	if got := events(b); strings.Contains(got, id) {
		t.Fatalf("the other site's event stream carries the request: %s", got)
	}
}
