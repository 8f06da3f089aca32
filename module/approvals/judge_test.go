package approvals_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// faithfulPolicy parks what changes roles and devices, and lets other
// calls pass; it reads the method, path and body, so each is judged as the
// backend will execute it.
const faithfulPolicy = `package approval

decision := {"action": "require_approval", "policy": "rbac", "resource": "roles",
	"approvers": [{"group": "approvers", "required": 1}],
	"reason": sprintf("%s %s", [input.request.method, input.request.raw_path])} if {
	startswith(input.request.path, "/roles")
} else := {"action": "deny", "policy": "devices", "reason": "wiping needs the wipe action"} if {
	startswith(input.request.path, "/devices")
	input.request.body.wiped == true
} else := {"action": "deny", "policy": "rbac", "reason": "no deleting roles"} if {
	input.request.method == "DELETE"
} else := {"action": "require_approval", "policy": "apps", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}]} if {
	startswith(input.request.path, "/apps")
} else := {"action": "allow", "policy": "open"}
`

// TestMethodOverrides: by default a call asking for another method is
// refused on any method; with JudgeMethodOverride the policy judges the
// method asked for, and the call is stored and replayed as it was sent, so
// it is never parked as one method and executed as another.
func TestMethodOverrides(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), nil)
	alice := h.Token("alice")
	for _, hdr := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X_HTTP_Method_Override"} {
		h.Expect(h.Do("POST", "/devices/2", alice, `{"wiped":true}`, hdr, "PATCH", "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
		h.Expect(h.Do("GET", "/devices/2", "", "", hdr, "DELETE"), http.StatusBadRequest, "method_override")
	}
	h.Expect(h.Do("POST", "/open?_method=DELETE", alice, `{}`), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("GET", "/open?%5Fmethod=DELETE", "", ""), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("POST", "/open", alice, "name=x&_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("delete", "/open", alice, ""), http.StatusBadRequest, "invalid_method")
	// In a body: a JSON member, a form field on a read, a body with no type.
	h.Expect(h.Do("POST", "/open", alice, `{"_method":"DELETE"}`, "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("GET", "/roles/2", "", "_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("OPTIONS", "/roles/2", "", `{"_method":"DELETE"}`, "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
	req, _ := http.NewRequest("POST", h.GW.URL+"/open", strings.NewReader("_method=DELETE"))
	req.Header.Set("Authorization", "Bearer "+alice)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a _method in a body with no type: %v %v", resp.StatusCode, err)
	}
	if n := len(h.Backend.Calls()); n != 0 {
		t.Fatalf("%d overridden calls reached the backend", n)
	}

	j := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), func(o *approvalstest.Options) { o.JudgeMethodOverride = true })
	alice, bob := j.Token("alice"), j.Token("bob", "approvers")
	// Judged as the PATCH it is: the wipe is denied.
	j.Expect(j.Do("POST", "/devices/2", alice, `{"wiped":true}`, "X-HTTP-Method-Override", "PATCH", "Content-Type", "application/json"), http.StatusForbidden, "denied")
	j.Expect(j.Do("POST", "/open", alice, "name=x&_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusForbidden, "denied")
	j.Expect(j.Do("POST", "/open?_method=PUT", alice, "", "X-HTTP-Method", "DELETE"), http.StatusBadRequest, "method_override")
	// Judged on a POST only, and only as a method everyone knows.
	j.Expect(j.Do("DELETE", "/devices/1", alice, "", "X-HTTP-Method-Override", "PATCH"), http.StatusBadRequest, "method_override")
	j.Expect(j.Do("POST", "/devices/1", alice, "", "X-HTTP-Method-Override", "FOO"), http.StatusBadRequest, "method_override")
	// Parked as the DELETE it is, and replayed as sent: POST with the
	// override, so the backend executes the DELETE that was approved.
	rec := j.Expect(j.Do("POST", "/roles/2", alice, "", "X-HTTP-Method-Override", "DELETE", "Approval-Justification", "j"), http.StatusAccepted, "")
	op := rec.Body["operation"].(map[string]any)
	if op["method"] != "DELETE" || op["wire_method"] != "POST" || rec.Str("reason") != "DELETE /roles/2" {
		t.Fatalf("parked as %v (%s)", op, rec.Str("reason"))
	}
	j.Approve(bob, rec.Str("id"))
	j.Expect(j.Do("POST", "/.approvals/api/v1/requests/"+rec.Str("id")+"/complete", alice, ""), http.StatusCreated, "")
	calls := j.Backend.Mutating()
	if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Header.Get("X-Http-Method-Override") != "DELETE" {
		t.Fatalf("the backend saw %+v", calls)
	}
}

// TestRawTargetIsJudgedAndReplayed: ambiguous paths are refused by
// default; when judged, the policy sees the normalized path beside the raw
// one, and the replay sends the raw target byte for byte.
func TestRawTargetIsJudgedAndReplayed(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), nil)
	alice := h.Token("alice")
	for _, p := range []string{"/apps/2%2Fx", "/apps/./2", "/open/../roles/2", "/open/%2e%2e/roles/2", "/apps/2%5Cx", "/apps/2;x=1", "/apps/2%00"} {
		h.Expect(h.Do("PUT", p, alice, `{}`, "Approval-Justification", "j"), http.StatusBadRequest, "ambiguous_path")
	}
	h.Expect(h.Do("PUT", "/apps/2?a=%zz", alice, `{}`, "Approval-Justification", "j"), http.StatusBadRequest, "invalid_query")
	// Normalized for the policy: escapes of letters, double slashes.
	h.Expect(h.Do("DELETE", "//r%6Fles/2", alice, "", "Approval-Justification", "j"), http.StatusAccepted, "")
	if n := len(h.Backend.Calls()); n != 0 {
		t.Fatalf("%d calls reached the backend", n)
	}

	j := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), func(o *approvalstest.Options) { o.JudgeAmbiguousPaths = true })
	alice, bob := j.Token("alice"), j.Token("bob", "approvers")
	j.Expect(j.Do("PUT", "/open/../roles/2", alice, "{}", "Approval-Justification", "j"), http.StatusAccepted, "")
	rec := j.Expect(j.Do("PUT", "/apps/2%2Fx?v=a%2Fb&v=2", alice, `{"version":"2"}`, "Approval-Justification", "j", "Content-Type", "application/json"), http.StatusAccepted, "")
	op := rec.Body["operation"].(map[string]any)
	if op["path"] != "/apps/2%2Fx" || op["raw_path"] != "/apps/2%2Fx" || op["raw_query"] != "v=a%2Fb&v=2" {
		t.Fatalf("stored %v", op)
	}
	j.Approve(bob, rec.Str("id"))
	j.Expect(j.Do("POST", "/.approvals/api/v1/requests/"+rec.Str("id")+"/complete", alice, ""), http.StatusOK, "")
	calls := j.Backend.Mutating()
	if len(calls) != 1 || calls[0].URI != "/apps/2%2Fx?v=a%2Fb&v=2" || !strings.Contains(calls[0].Body, `"version":"2"`) {
		t.Fatalf("the replay sent %+v", calls)
	}
}

func stored(h *approvalstest.Harness) int64 {
	h.T.Helper()
	resp, err := h.Cli.Get(context.Background(), "/approvals/requests/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		h.T.Fatal(err)
	}
	return resp.Count
}

// TestBadInputEverywhere: hostile input gets a clear 4xx and nothing is
// stored half-way; a binary body is replayed byte for byte.
func TestBadInputEverywhere(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "deny", "policy": "json", "reason": "the body is not JSON"} if {
	input.request.body == null
	input.request.path == "/json-only"
} else := {
	"action": "require_approval", "policy": "p", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}],
}
`), nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")

	// A malformed JSON body is refused: judged as null it could pass a
	// policy that the backend's parser would not. A body of a type the
	// gateway does not parse is null, and the policy decides.
	h.Expect(h.Do("POST", "/json-only", alice, `{"a":`, "Content-Type", "application/json"), http.StatusBadRequest, "invalid_body")
	h.Expect(h.Do("POST", "/json-only", alice, `{"a":`, "Content-Type", "text/plain"), http.StatusForbidden, approvals.CodeDenied)

	// Invalid UTF-8 in the justification.
	h.Expect(h.Do("POST", "/x", alice, "", "Approval-Justification", "bad \xff\xfe text"), http.StatusBadRequest, approvals.CodeBadRequest)
	h.Expect(h.Do("POST", "/x", alice, ""), http.StatusPreconditionRequired, approvals.CodeJustificationRequired)

	// A huge number of headers is refused before it reaches the gateway.
	req, _ := http.NewRequest("POST", h.GW.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Approval-Justification", "j")
	for i := range 20000 {
		req.Header.Set(fmt.Sprintf("X-Flood-%d", i), strings.Repeat("v", 40))
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("a header flood answered %d", resp.StatusCode)
		}
	}
	if n := stored(h); n != 0 {
		t.Fatalf("bad input stored %d requests", n)
	}

	// Unknown id formats and hostile cursors.
	for _, id := range []string{"..", "%2e%2e%2fsecrets", "01a19bb3-9500-7000-83ec-809bb63b654f%00", strings.Repeat("a", 5000), "../../audit"} {
		// Paths with dot segments are no call of the API's document.
		h.Undocumented("GET", "/.approvals/api/v1/requests/"+id)
		h.Undocumented("POST", "/.approvals/api/v1/requests/"+id+"/approve")
		res := h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, "")
		if res.Status != http.StatusNotFound && res.Status != http.StatusBadRequest {
			t.Fatalf("id %q answered %d", id, res.Status)
		}
		res = h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, "")
		if res.Status != http.StatusNotFound && res.Status != http.StatusBadRequest {
			t.Fatalf("approve %q answered %d", id, res.Status)
		}
	}
	for _, c := range []string{"' OR 1=1 --", "../../", "\x00", strings.Repeat("f", 36), "01a19bb3-9500-7000-83ec-809bb63b654"} {
		h.Expect(h.Do("GET", "/.approvals/api/v1/requests?cursor="+url.QueryEscape(c), alice, ""), http.StatusBadRequest, approvals.CodeBadRequest)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/x/approve", bob, `{"notes": "\udc00"}`, "Content-Type", "application/json"), http.StatusNotFound, approvals.CodeNotFound)

	// A binary body goes to the backend byte for byte.
	binary := make([]byte, 256*4)
	for i := range binary {
		binary[i] = byte(i)
	}
	res := h.Expect(h.Do("PUT", "/blob", alice, string(binary), "Approval-Justification", "upload", "Content-Type", "application/octet-stream"), http.StatusAccepted, "")
	id := res.Str("id")
	got := h.Record(bob, id)
	if got.Str("body_base64") == "" {
		t.Fatalf("a binary body is not shown as base64: %s", got.Raw[:200])
	}
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	calls := h.Backend.Mutating()
	if len(calls) != 1 || !bytes.Equal([]byte(calls[0].Body), binary) {
		t.Fatalf("the replayed body differs (%d calls)", len(calls))
	}
}

// TestHostileTokens: each hostile token is refused with 401 and nothing is
// stored; a flood of unknown key ids causes at most one JWKS refresh per
// rate-limit window. A valid token passes, as a control.
func TestHostileTokens(t *testing.T) {
	key, _ := rsa.GenerateKey(rand.Reader, 2048)
	set := jwkset.NewMemoryStorage()
	j, _ := jwkset.NewJWKFromKey(&key.PublicKey, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: "k1"}})
	_ = set.KeyWrite(context.Background(), j)
	var fetches atomic.Int32
	jwks := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fetches.Add(1)
		b, _ := set.JSONPublic(r.Context())
		_, _ = w.Write(b)
	}))
	defer jwks.Close()
	h := approvalstest.New(t, "", func(o *approvalstest.Options) {
		v, err := identity.New(identity.Options{JWKSURL: jwks.URL, Issuer: "https://idp.test", Audience: "admin-api"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(v.Close)
		o.Identity = v
	})
	claims := func(mod func(jwt.MapClaims)) jwt.MapClaims {
		c := jwt.MapClaims{"sub": "mallory", "groups": []any{"approvers"}, "iss": "https://idp.test", "aud": "admin-api",
			"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix()}
		if mod != nil {
			mod(c)
		}
		return c
	}
	signRS := func(c jwt.MapClaims, kid string) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodRS256, c)
		tok.Header["kid"] = kid
		s, _ := tok.SignedString(key)
		return s
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	hs := func(secret []byte) string {
		tok := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil))
		tok.Header["kid"] = "k1"
		s, _ := tok.SignedString(secret)
		return s
	}
	b64 := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	hostile := map[string]string{
		"alg none":                  b64(map[string]string{"alg": "none", "kid": "k1"}) + "." + b64(claims(nil)) + ".",
		"HS256 with the public key": hs(pubPEM),
		"alg not allowed (HS256)":   hs([]byte(strings.Repeat("k", 32))),
		"expired":                   signRS(claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Hour).Unix() }), "k1"),
		"nbf in the future":         signRS(claims(func(c jwt.MapClaims) { c["nbf"] = time.Now().Add(time.Hour).Unix() }), "k1"),
		"wrong iss":                 signRS(claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), "k1"),
		"wrong aud":                 signRS(claims(func(c jwt.MapClaims) { c["aud"] = "other-api" }), "k1"),
		"missing exp":               signRS(claims(func(c jwt.MapClaims) { delete(c, "exp") }), "k1"),
		"path-like kid":             signRS(claims(nil), "../../etc/passwd"),
		"unknown kid":               signRS(claims(nil), "nope"),
		"groups of the wrong type":  signRS(claims(func(c jwt.MapClaims) { c["groups"] = map[string]any{"admin": true} }), "k1"),
		"oversized":                 signRS(claims(func(c jwt.MapClaims) { c["pad"] = strings.Repeat("x", 64<<10) }), "k1"),
		"dot-flooded":               strings.Repeat(".", 10000),
		"not a JWT":                 "Zm9v",
	}
	for name, tok := range hostile {
		t.Run(name, func(t *testing.T) {
			res := h.Do("DELETE", "/apps/1", tok, "", "Approval-Justification", "x")
			if res.Status != http.StatusUnauthorized || res.Code() != approvals.CodeUnauthenticated {
				t.Fatalf("got %d %s", res.Status, res.Raw)
			}
		})
	}
	resp, err := h.Cli.Get(context.Background(), "/approvals/requests/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil || resp.Count != 0 {
		t.Fatalf("a hostile token stored something: %d %v", resp.Count, err)
	}
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("a hostile token reached the backend")
	}

	// A flood of unknown key ids: at most one refresh in the window.
	before := fetches.Load()
	var wg sync.WaitGroup
	sem := make(chan struct{}, 32)
	for i := range 10000 {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			req, _ := http.NewRequest("DELETE", h.GW.URL+"/apps/1", nil)
			req.Header.Set("Authorization", "Bearer "+signRS(claims(nil), "flood-"+string(rune('a'+i%26))+strings.Repeat("x", i%7)))
			r, err := http.DefaultClient.Do(req)
			if err == nil {
				r.Body.Close()
			}
		}()
	}
	wg.Wait()
	if got := fetches.Load() - before; got > 1 {
		t.Fatalf("%d JWKS fetches under the flood, want at most 1", got)
	}

	// The control: a valid token parks.
	h.Expect(h.Do("DELETE", "/apps/1", signRS(claims(nil), "k1"), "", "Approval-Justification", "x"), http.StatusAccepted, "")
}

func TestBodyLimit(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.MaxBody = 100 })
	alice := h.Token("alice")
	big := strings.Repeat("x", 101)
	h.Expect(h.Do("POST", "/apps", alice, big, "Approval-Justification", "j"), http.StatusRequestEntityTooLarge, approvals.CodeBodyTooLarge)
	// Chunked: no Content-Length, the limit still holds.
	req, _ := http.NewRequest("POST", h.GW.URL+"/apps", struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Approval-Justification", "j")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength != 0 {
		t.Fatalf("chunked oversize body: %d (content length %d)", resp.StatusCode, req.ContentLength)
	}
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=mine", alice, ""), http.StatusOK, "")
	if len(res.Body["requests"].([]any)) != 0 {
		t.Fatal("an oversize request was stored")
	}
	h.Park(alice, "POST", "/apps", `{"pad":"`+strings.Repeat("x", 100-10)+`"}`)
}

const splitPolicy = `package approval

decision := {"action": "allow", "policy": "open"} if {
	input.request.path == "/open"
} else := {"action": "deny", "policy": "rbac", "reason": "RBAC changes are frozen"} if {
	input.request.path == "/roles"
} else := {"action": "sideways"} if {
	input.request.path == "/broken"
} else := {
	"action": "require_approval", "policy": "apps", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}],
}
`

func TestPolicyActions(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), nil)
	alice := h.Token("alice")
	h.Expect(h.Do("POST", "/open", alice, `{"a":1}`), http.StatusCreated, "")
	if calls := h.Backend.Mutating(); len(calls) != 1 || calls[0].Body != `{"a":1}` || calls[0].Header.Get("Authorization") != "Bearer "+alice {
		t.Fatalf("allowed call did not pass whole: %+v", calls)
	}
	res := h.Expect(h.Do("POST", "/roles", alice, ""), http.StatusForbidden, approvals.CodeDenied)
	e := res.Body["error"].(map[string]any)
	if e["message"] != "RBAC changes are frozen" || e["policy"] != "rbac" {
		t.Fatalf("deny: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/broken", alice, ""), http.StatusForbidden, approvals.CodeDenied)
	if h.Logs.FilterMessage("policy gave no valid decision; denying").Len() != 1 {
		t.Fatal("malformed decision not logged")
	}
	h.Expect(h.Do("POST", "/open", "", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	if len(h.Backend.Mutating()) != 1 {
		t.Fatal("a refused call reached the backend")
	}
	// Methods outside the judged list pass untouched.
	h2 := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), func(o *approvalstest.Options) { o.Methods = []string{"DELETE"} })
	h2.Expect(h2.Do("POST", "/roles", "", ""), http.StatusCreated, "")
}
