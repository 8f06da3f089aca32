package approvals_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
)

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
