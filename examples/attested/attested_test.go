package attested_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/examples/adminapi"
	"github.com/approval-gateway/gateway/examples/attested"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/golang-jwt/jwt/v5"
)

const policy = `package approval

decision := {"action": "require_approval", "policy": "devices", "resource": concat("/", ["devices", input.request.segments[1]]),
	"approvers": [{"group": "device-approvers", "required": 1}]} if {
	input.request.segments[0] == "devices"
	count(input.request.segments) == 3
}
`

// TestBackendRefusesUnapprovedCalls: the example admin API with
// attested.Require carries out a wipe that the gateway replays after an
// approval, and refuses one sent straight to it with a leaked admin
// token, the attestation used again, on another device, with another
// body, or signed by another key.
func TestBackendRefusesUnapprovedCalls(t *testing.T) {
	var mu sync.Mutex
	var seen []http.Header // the attestations reaching the backend
	var backend *httptest.Server
	protect := func(next http.Handler) http.Handler {
		var once sync.Once
		var h http.Handler
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			once.Do(func() {
				// The gateway's JWKS is known once the harness runs.
				mw, err := attested.Require(context.Background(), jwksURL, "approval-gateway", "default")
				if err != nil {
					t.Error(err)
				}
				h = mw(next)
			})
			mu.Lock()
			seen = append(seen, r.Header.Clone())
			mu.Unlock()
			h.ServeHTTP(w, r)
		})
	}
	api := adminapi.NewWith(adminapi.Options{Protect: protect})
	backend = httptest.NewServer(api)
	t.Cleanup(backend.Close)

	h := approvalstest.New(t, testkit.WritePolicy(t, policy), func(o *approvalstest.Options) { o.Clock = time.Now })
	jwksURL = h.GW.URL + "/.approvals/.well-known/jwks.json"
	alice := h.Token("alice", "it-ops")
	via := h.Before(backend.URL)
	direct := testkit.NewClient(t, backend.URL)
	state := func(id string) string {
		t.Helper()
		return direct.Expect(direct.Do("GET", "/devices/"+id, "", ""), http.StatusOK, "").Str("state")
	}

	// A leaked admin token, straight to the backend.
	refused := direct.Do("POST", "/devices/2/wipe", alice, `{"confirm":true}`, "Content-Type", "application/json")
	if refused.Status != http.StatusForbidden || state("2") != "" {
		t.Fatalf("a wipe without approval: %d %s; device 2 is %q", refused.Status, refused.Raw, state("2"))
	}
	// Or with an attestation it made up.
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	forged := jwt.NewWithClaims(jwt.SigningMethodEdDSA, jwt.MapClaims{"iss": "approval-gateway", "jti": "x", "exp": time.Now().Add(time.Minute).Unix(),
		"req": map[string]string{"method": "POST", "target": "/devices/2/wipe", "sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}})
	forged.Header["typ"], forged.Header["kid"] = "approval+jwt", "made-up"
	tok, _ := forged.SignedString(priv)
	if a := direct.Do("POST", "/devices/2/wipe", alice, "", "Approval-Attestation", tok); a.Status != http.StatusForbidden {
		t.Fatalf("a forged attestation: %d %s", a.Status, a.Raw)
	}

	// Through the gateway: parked, approved, completed.
	id := via.Expect(via.Do("POST", "/devices/2/wipe", alice, `{"confirm":true}`, "Content-Type", "application/json",
		"Approval-Justification", "INC-4711 phone reported stolen"), http.StatusAccepted, "").Str("id")
	via.Expect(via.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "device-approvers"), ""), http.StatusOK, "")
	done := via.Expect(via.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	if done.Str("state") != "wiped" || state("2") != "wiped" {
		t.Fatalf("the approved wipe: %s; device 2 is %q", done.Raw, state("2"))
	}

	mu.Lock()
	att, approvedBy := seen[len(seen)-1].Get("Approval-Attestation"), seen[len(seen)-1].Get("Approval-Approved-By")
	mu.Unlock()
	t.Logf("the approved wipe's attestation: %s", att)
	for _, c := range []struct{ name, path, body string }{
		{"another device", "/devices/1/wipe", `{"confirm":true}`},
		{"another body", "/devices/2/wipe", `{"confirm":false}`},
		{"the same call again", "/devices/2/wipe", `{"confirm":true}`},
	} {
		if a := direct.Do("POST", c.path, alice, c.body, "Content-Type", "application/json", "Approval-Attestation", att); a.Status != http.StatusForbidden {
			t.Errorf("the attestation used for %s: %d %s", c.name, a.Status, a.Raw)
		}
	}
	if state("1") != "" {
		t.Errorf("device 1 is %q", state("1"))
	}
	// Approval-Approved-By must name the attestation's approvers: the
	// same attestation with another list is refused for it (before it is
	// found used).
	if approvedBy != `"bob"` {
		t.Fatalf("the replay's Approval-Approved-By: %q", approvedBy)
	}
	for _, other := range []string{`"bob", "mallory"`, `bob, mallory`, `"mallory"`, `"bob`} {
		a := direct.Do("POST", "/devices/2/wipe", alice, `{"confirm":true}`, "Content-Type", "application/json", "Approval-Attestation", att, "Approval-Approved-By", other)
		if a.Status != http.StatusForbidden || !strings.Contains(a.Raw, "does not name the attestation's approvers") {
			t.Errorf("Approval-Approved-By %s: %d %s", other, a.Status, a.Raw)
		}
	}
	// The attestation names the site that approved it: a backend of
	// another site (another audience) refuses it, one of this site takes
	// it (each instance remembers only what it saw).
	for aud, want := range map[string]int{"rbac": http.StatusForbidden, "default": http.StatusOK} {
		mw, err := attested.Require(context.Background(), jwksURL, "approval-gateway", aud)
		if err != nil {
			t.Fatal(err)
		}
		var approvers []string
		fresh := httptest.NewServer(mw(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { approvers = attested.Approvers(r) })))
		a := testkit.NewClient(t, fresh.URL).Do("POST", "/devices/2/wipe", alice, `{"confirm":true}`, "Content-Type", "application/json",
			"Approval-Attestation", att, "Approval-Approved-By", approvedBy)
		fresh.Close()
		if a.Status != want || (want == http.StatusOK && strings.Join(approvers, ",") != "bob") {
			t.Errorf("audience %s: %d %s, approvers %q", aud, a.Status, a.Raw, approvers)
		}
	}
	// Reads are not protected.
	var all []map[string]any
	resp, err := http.Get(backend.URL + "/devices")
	if err == nil {
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		err = json.Unmarshal(b, &all)
	}
	if err != nil || len(all) != 2 || !strings.Contains(resp.Header.Get("Content-Type"), "json") {
		t.Errorf("a read: %v %v", err, all)
	}
}

var jwksURL string

// The README shows Require as it is.
func TestReadmeShowsRequire(t *testing.T) {
	src, err := os.ReadFile("attested.go")
	if err != nil {
		t.Fatal(err)
	}
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	fn := string(src[strings.Index(string(src), "func Require("):])
	if !strings.Contains(string(readme), "```go\n"+fn+"```") {
		t.Fatal("the README's copy of attested.Require differs from examples/attested/attested.go")
	}
}

// TestApprovedByIsAList: Approval-Approved-By reads as RFC 9651 says: one
// approver named "eve, frank" is one, a Display String is its UTF-8 text,
// and what is not a List of subjects is an error.
func TestApprovedByIsAList(t *testing.T) {
	for field, want := range map[string]string{
		`"eve, frank"`:              "eve, frank",
		`"bob", %"jos%c3%a9"`:       "bob|josé",
		`"bob",   "carol"`:          "bob|carol",
		`"say \"hi\""`:              `say "hi"`,
		``:                          "",
		`bob`:                       "error", // a Token, not a String
		`"bob", (carol)`:            "error",
		`"bob`:                      "error",
		`%"jos%C3%A9"`:              "error", // upper-case escapes are invalid
		`"bob";role=admin, "carol"`: "bob|carol",
		`"eve", "frank", 1`:         "error",
	} {
		got, err := attested.ApprovedBy(http.Header{"Approval-Approved-By": {field}})
		s := strings.Join(got, "|")
		if err != nil {
			s = "error"
		}
		if s != want {
			t.Errorf("%s: %q (%v), want %q", field, got, err, want)
		}
	}
}
