package approvals_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/go-jose/go-jose/v4"
)

const wipePolicy = `package approval

decision := {"action": "require_approval", "policy": "device-wipe", "resource": concat("/", ["devices", input.request.segments[1]]),
	"approvers": [{"group": "approvers", "required": 2}]} if {
	input.request.segments[0] == "devices"
	input.request.segments[2] == "wipe"
}
`

// attestationClaims are an attestation's claims as a backend reads them.
type attestationClaims struct {
	Iss       string   `json:"iss"`
	Aud       any      `json:"aud"`
	Jti       string   `json:"jti"`
	Sub       string   `json:"sub"`
	Iat       int64    `json:"iat"`
	Exp       int64    `json:"exp"`
	Approvers []string `json:"approvers"`
	Policy    string   `json:"policy"`
	Req       struct {
		Method, Target, SHA256 string
	} `json:"req"`
}

// verifyAttestation checks token against the JWKS as any backend would,
// with go-jose (not the library that signs): an EdDSA compact JWS of type
// approval+jwt whose kid is in the set. It returns the claims and kid.
func verifyAttestation(t *testing.T, token string, jwks []byte) (attestationClaims, string) {
	t.Helper()
	var set jose.JSONWebKeySet
	if err := json.Unmarshal(jwks, &set); err != nil {
		t.Fatalf("the JWKS does not parse: %v: %s", err, jwks)
	}
	jws, err := jose.ParseSigned(token, []jose.SignatureAlgorithm{jose.EdDSA})
	if err != nil {
		t.Fatalf("the attestation is not an EdDSA JWS: %v", err)
	}
	hdr := jws.Signatures[0].Protected
	if hdr.ExtraHeaders["typ"] != "approval+jwt" || hdr.KeyID == "" {
		t.Fatalf("the attestation's header: typ %v, kid %q", hdr.ExtraHeaders["typ"], hdr.KeyID)
	}
	keys := set.Key(hdr.KeyID)
	if len(keys) != 1 {
		t.Fatalf("the JWKS has %d keys of id %s", len(keys), hdr.KeyID)
	}
	payload, err := jws.Verify(keys[0])
	if err != nil {
		t.Fatalf("the attestation does not verify against the JWKS: %v", err)
	}
	var c attestationClaims
	if err := json.Unmarshal(payload, &c); err != nil {
		t.Fatal(err)
	}
	return c, hdr.KeyID
}

// TestReplayCarriesAVerifiableAttestation: the replayed call carries a JWS
// that a backend verifies against the JWKS the gateway serves without a
// token, saying who asked, who approved in which order, under which
// policy, and exactly which call (method, raw target, body hash).
func TestReplayCarriesAVerifiableAttestation(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, wipePolicy), nil)
	alice := h.Token("alice", "it-ops")
	const target, body = "/devices/7/wipe?reason=stolen%20phone&path=a%2Fb", `{"confirm": true}`
	id := h.Park(alice, "POST", target, body)
	h.Approve(h.Token("carol", "approvers"), id)
	h.Approve(h.Token("bob", "approvers"), id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")

	calls := h.Backend.Calls()
	if len(calls) != 1 {
		t.Fatalf("the backend saw %d calls", len(calls))
	}
	replay := calls[0]
	jwks := h.Do("GET", "/.approvals/.well-known/jwks.json", "", "")
	h.Expect(jwks, http.StatusOK, "")
	if ct := jwks.Header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("the JWKS is served as %q", ct)
	}
	c, kid := verifyAttestation(t, replay.Header.Get("Approval-Attestation"), []byte(jwks.Raw))
	sum := sha256.Sum256([]byte(replay.Body))
	now := h.Clock.Now().Unix()
	if c.Iss != "approval-gateway" || fmt.Sprint(c.Aud) != "[default]" || c.Jti != id || c.Sub != "alice" || c.Iat != now || c.Exp != now+300 ||
		!slices.Equal(c.Approvers, []string{"carol", "bob"}) || c.Policy != "device-wipe" {
		t.Errorf("claims %+v (request %s, now %d)", c, id, now)
	}
	if c.Req.Method != "POST" || c.Req.Target != replay.URI || c.Req.Target != target || c.Req.SHA256 != hex.EncodeToString(sum[:]) || replay.Body != body {
		t.Errorf("req %+v; the backend got %s %s with body %q", c.Req, replay.Method, replay.URI, replay.Body)
	}
	var set struct{ Keys []map[string]any }
	_ = json.Unmarshal([]byte(jwks.Raw), &set)
	if len(set.Keys) != 1 || set.Keys[0]["kty"] != "OKP" || set.Keys[0]["crv"] != "Ed25519" || set.Keys[0]["kid"] != kid || set.Keys[0]["d"] != nil {
		t.Errorf("JWKS %s", jwks.Raw)
	}
}

// TestAttestationAudienceAndIssuer: configured, they are the claims.
func TestAttestationAudienceAndIssuer(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, wipePolicy), func(o *approvalstest.Options) {
		o.Attestation = approvals.AttestationSettings{Issuer: "https://gw.example.com", Audience: "mdm-api"}
	})
	alice := h.Token("alice", "it-ops")
	id := h.Park(alice, "POST", "/devices/2/wipe", "")
	h.Approve(h.Token("carol", "approvers"), id)
	h.Approve(h.Token("bob", "approvers"), id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")
	c, _ := verifyAttestation(t, h.Backend.Calls()[0].Header.Get("Approval-Attestation"), []byte(h.Do("GET", "/.approvals/.well-known/jwks.json", "", "").Raw))
	empty := sha256.Sum256(nil)
	if c.Iss != "https://gw.example.com" || !slices.Equal(asStrings(c.Aud), []string{"mdm-api"}) || c.Req.SHA256 != hex.EncodeToString(empty[:]) {
		t.Errorf("claims %+v", c)
	}
}

func asStrings(v any) []string {
	switch v := v.(type) {
	case string:
		return []string{v}
	case []any:
		var out []string
		for _, x := range v {
			s, _ := x.(string)
			out = append(out, s)
		}
		return out
	}
	return nil
}

// TestAttestationKeysAreSharedAndRotate: gateways on one store sign with
// the same keys; with rotation, a new key is published before it signs,
// and the old one stays in the JWKS until what it signed has expired
// (and in the full set, for old audit checkpoints, after that).
func TestAttestationKeysAreSharedAndRotate(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, wipePolicy), func(o *approvalstest.Options) {
		o.Attestation = approvals.AttestationSettings{Rotate: time.Hour, Publish: 2 * time.Minute, Refresh: time.Second}
	})
	sibling := h.Sibling(h.Opts.Logger)
	alice := h.Token("alice", "it-ops")
	n := 0
	// signedBy completes a new request and returns the kid of its
	// attestation, checked against the JWKS of both gateways.
	signedBy := func() string {
		t.Helper()
		n++
		id := h.Park(alice, "POST", "/devices/"+string(rune('0'+n))+"/wipe", "")
		h.Approve(h.Token("carol", "approvers"), id)
		h.Approve(h.Token("bob", "approvers"), id)
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")
		calls := h.Backend.Calls()
		token := calls[len(calls)-1].Header.Get("Approval-Attestation")
		_, kid := verifyAttestation(t, token, []byte(jwksOf(t, h.Svc, "")))
		verifyAttestation(t, token, []byte(jwksOf(t, sibling, "")))
		return kid
	}
	first := signedBy()
	if got := kids(t, jwksOf(t, sibling, "")); !slices.Equal(got, []string{first}) {
		t.Fatalf("the sibling publishes %v, the gateway signed with %s", got, first)
	}

	h.Clock.Add(time.Hour + time.Second) // due for rotation: a new key is published
	if got := kids(t, jwksOf(t, h.Svc, "")); len(got) != 2 || got[0] != first {
		t.Fatalf("after the rotation period the JWKS has %v", got)
	}
	second := kids(t, jwksOf(t, h.Svc, ""))[1]
	if got := kids(t, jwksOf(t, sibling, "")); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("the sibling publishes %v", got)
	}
	if kid := signedBy(); kid != first {
		t.Fatalf("a key signed before its publication period ended: %s", kid)
	}

	h.Clock.Add(2 * time.Minute) // the new key signs; the old one stays published
	if kid := signedBy(); kid != second {
		t.Fatalf("after its publication period the new key does not sign: %s", kid)
	}
	if got := kids(t, jwksOf(t, sibling, "")); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("the old key left the JWKS while what it signed may still be valid: %v", got)
	}

	h.Clock.Add(6*time.Minute + time.Second) // what the old key signed has expired
	if got := kids(t, jwksOf(t, h.Svc, "")); !slices.Equal(got, []string{second}) {
		t.Fatalf("the JWKS still has %v", got)
	}
	if got := kids(t, jwksOf(t, sibling, "?all=true")); !slices.Equal(got, []string{first, second}) {
		t.Fatalf("the full set has %v", got)
	}
}

// jwksOf is the JWKS a gateway serves (with query).
func jwksOf(t *testing.T, svc *approvals.Service, query string) string {
	t.Helper()
	w := httptest.NewRecorder()
	if err := svc.ServeHTTP(w, httptest.NewRequest("GET", "/.approvals/.well-known/jwks.json"+query, nil), nil); err != nil || w.Code != http.StatusOK {
		t.Fatalf("JWKS: %d %v %s", w.Code, err, w.Body)
	}
	return w.Body.String()
}

func kids(t *testing.T, jwks string) []string {
	t.Helper()
	var set struct{ Keys []struct{ Kid string } }
	if err := json.Unmarshal([]byte(jwks), &set); err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, k := range set.Keys {
		out = append(out, k.Kid)
	}
	return out
}
