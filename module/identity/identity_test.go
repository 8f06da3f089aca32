package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/MicahParks/jwkset"
	"github.com/golang-jwt/jwt/v5"
)

var secret = []byte("0123456789abcdef0123456789abcdef")

func claims(mod func(jwt.MapClaims)) jwt.MapClaims {
	c := jwt.MapClaims{
		"sub":    "alice",
		"groups": []any{"approvers", "ops"},
		"iss":    "https://idp.test",
		"aud":    "admin-api",
		"exp":    time.Now().Add(time.Hour).Unix(),
		"iat":    time.Now().Unix(),
	}
	if mod != nil {
		mod(c)
	}
	return c
}

func sign(t *testing.T, m jwt.SigningMethod, key any, c jwt.MapClaims, kid string) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	if kid != "" {
		tok.Header["kid"] = kid
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func hmacVerifier(t *testing.T, mod func(*Options)) *Verifier {
	t.Helper()
	o := Options{Secret: secret, Issuer: "https://idp.test", Audience: "admin-api"}
	if mod != nil {
		mod(&o)
	}
	v, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(v.Close)
	return v
}

func TestHMACTokens(t *testing.T) {
	v := hmacVerifier(t, nil)
	otherSecret := []byte("ffffffffffffffffffffffffffffffff")
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	tests := []struct {
		name   string
		token  func() string
		ok     bool
		errHas string
	}{
		{"valid", func() string { return sign(t, jwt.SigningMethodHS256, secret, claims(nil), "") }, true, ""},
		{"HS512 allowed by default", func() string { return sign(t, jwt.SigningMethodHS512, secret, claims(nil), "") }, true, ""},
		{"expired", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-time.Minute).Unix() }), "")
		}, false, "expired"},
		{"expired within leeway", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(-10 * time.Second).Unix() }), "")
		}, true, ""},
		{"no exp", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { delete(c, "exp") }), "")
		}, false, "exp"},
		{"wrong issuer", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["iss"] = "https://evil.test" }), "")
		}, false, "issuer"},
		{"missing issuer", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { delete(c, "iss") }), "")
		}, false, "iss"},
		{"wrong audience", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["aud"] = "other" }), "")
		}, false, "audience"},
		{"audience in a list", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["aud"] = []any{"x", "admin-api"} }), "")
		}, true, ""},
		{"wrong secret", func() string { return sign(t, jwt.SigningMethodHS256, otherSecret, claims(nil), "") }, false, "signature"},
		{"algorithm not allowed", func() string { return sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), "") }, false, "signing method"},
		{"alg none", func() string {
			return sign(t, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, claims(nil), "")
		}, false, "signing method"},
		{"hand-made alg none", func() string {
			h := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"none","typ":"JWT"}`))
			b, _ := json.Marshal(claims(nil))
			return h + "." + base64.RawURLEncoding.EncodeToString(b) + "."
		}, false, "invalid"},
		{"garbage", func() string { return "not.a.token" }, false, "invalid token"},
		{"subject not a string", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = 42 }), "")
		}, false, "sub"},
		{"empty subject", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = "" }), "")
		}, false, "sub"},
		{"subject of white space", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = " \t " }), "")
		}, false, "empty"},
		{"subject of one NUL", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = "\x00" }), "")
		}, false, "control character"},
		{"subject with a tab", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = "alice\t" }), "")
		}, false, "control character"},
		{"subject with a C1 control", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = "alice\u0085" }), "")
		}, false, "control character"},
		{"subject with DEL", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["sub"] = "alice\x7f" }), "")
		}, false, "control character"},
		{"subject not UTF-8", func() string {
			// A payload made by hand can hold any bytes in a string.
			return signPayload(t, `"sub":"alice"`, "\"sub\":\"alice\xff\"")
		}, false, "I-JSON"},
		{"subject with a lone surrogate", func() string {
			return signPayload(t, `"sub":"alice"`, `"sub":"alice\ud800"`)
		}, false, "I-JSON"},
		{"subject twice", func() string {
			return signPayload(t, `"sub":"alice"`, `"sub":"alice","sub":"bob"`)
		}, false, "I-JSON"},
		{"groups a number", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["groups"] = 7 }), "")
		}, false, "groups"},
		{"groups with a non-string", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["groups"] = []any{"a", map[string]any{}} }), "")
		}, false, "groups"},
		{"exp a string", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = "tomorrow" }), "")
		}, false, "invalid"},
		{"issued in the future", func() string {
			return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["iat"] = time.Now().Add(time.Hour).Unix() }), "")
		}, false, "issued"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tok := tc.token()
			id, err := v.Verify(tok)
			if tc.ok {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				if id.Subject != "alice" || strings.Join(id.Groups, ",") != "approvers,ops" {
					t.Fatalf("identity %+v", id)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.errHas) {
				t.Fatalf("error %q does not mention %q", err, tc.errHas)
			}
			if strings.Contains(err.Error(), tok) {
				t.Fatal("error contains the token")
			}
		})
	}
}

// signPayload signs, with the HMAC secret, the claims of a valid token
// with old replaced by new in their JSON text: what an encoder would not
// write.
func signPayload(t *testing.T, old, new string) string {
	t.Helper()
	b, err := json.Marshal(claims(nil))
	if err != nil || !strings.Contains(string(b), old) {
		t.Fatalf("the claims %s do not hold %s", b, old)
	}
	b = []byte(strings.Replace(string(b), old, new, 1))
	signing := base64.RawURLEncoding.EncodeToString([]byte(`{"alg":"HS256","typ":"JWT"}`)) + "." + base64.RawURLEncoding.EncodeToString(b)
	sig, err := jwt.SigningMethodHS256.Sign(signing, secret)
	if err != nil {
		t.Fatal(err)
	}
	return signing + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestClaimPaths(t *testing.T) {
	v := hmacVerifier(t, func(o *Options) {
		o.SubjectClaim = "preferred_username"
		o.GroupsClaim = "realm_access.roles"
	})
	tok := sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) {
		c["preferred_username"] = "bob"
		c["realm_access"] = map[string]any{"roles": []any{"approvers"}}
	}), "")
	id, err := v.Verify(tok)
	if err != nil || id.Subject != "bob" || len(id.Groups) != 1 || id.Groups[0] != "approvers" {
		t.Fatalf("%+v %v", id, err)
	}
	// groups as a space-separated string (as "scope" is)
	v2 := hmacVerifier(t, func(o *Options) { o.GroupsClaim = "scope" })
	id, err = v2.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["scope"] = "a  b c" }), ""))
	if err != nil || strings.Join(id.Groups, ",") != "a,b,c" {
		t.Fatalf("%+v %v", id, err)
	}
	// the intermediate object is not an object
	_, err = v.Verify(sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) {
		c["preferred_username"] = "bob"
		c["realm_access"] = "roles"
	}), ""))
	if err != nil {
		t.Fatalf("absent groups should mean no groups: %v", err)
	}
}

func TestBearerHeader(t *testing.T) {
	v := hmacVerifier(t, nil)
	good := sign(t, jwt.SigningMethodHS256, secret, claims(nil), "")
	for _, tc := range []struct {
		header string
		ok     bool
	}{
		{"Bearer " + good, true},
		{"bearer " + good, true},
		{"", false},
		{"Basic " + good, false},
		{"Bearer", false},
		{"Bearer ", false},
	} {
		r := httptest.NewRequest("POST", "/", nil)
		if tc.header != "" {
			r.Header.Set("Authorization", tc.header)
		}
		_, err := v.Authenticate(r)
		if (err == nil) != tc.ok {
			t.Errorf("%q: err %v", tc.header, err)
		}
	}
}

func writePEM(t *testing.T, key crypto.PublicKey) string {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "pub.pem")
	if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestPublicKeyFiles(t *testing.T) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	var keys []crypto.PublicKey
	for _, p := range []string{writePEM(t, &rsaKey.PublicKey), writePEM(t, &ecKey.PublicKey), writePEM(t, edPub)} {
		k, err := LoadPublicKeyFile(p)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, k)
	}
	v, err := New(Options{PublicKeys: keys})
	if err != nil {
		t.Fatal(err)
	}
	want := "RS256,RS384,RS512,PS256,PS384,PS512,ES256,EdDSA"
	if got := strings.Join(v.Algorithms(), ","); got != want {
		t.Fatalf("derived algorithms %s, want %s", got, want)
	}
	for name, tok := range map[string]string{
		"RS256": sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), ""),
		"PS256": sign(t, jwt.SigningMethodPS256, rsaKey, claims(nil), ""),
		"ES256": sign(t, jwt.SigningMethodES256, ecKey, claims(nil), ""),
		"EdDSA": sign(t, jwt.SigningMethodEdDSA, edKey, claims(nil), ""),
	} {
		if _, err := v.Verify(tok); err != nil {
			t.Errorf("%s rejected: %v", name, err)
		}
	}
	// A token signed with a key the gateway does not hold.
	other, _ := rsa.GenerateKey(rand.Reader, 2048)
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, other, claims(nil), "")); err == nil {
		t.Error("token from an unknown key accepted")
	}
	// HMAC signed with the RSA public key's bytes: the classic confusion attack.
	der, _ := x509.MarshalPKIXPublicKey(&rsaKey.PublicKey)
	pemBytes := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
	if _, err := v.Verify(sign(t, jwt.SigningMethodHS256, pemBytes, claims(nil), "")); err == nil {
		t.Error("HS256 token signed with the public key accepted")
	}
	// An explicit allow-list narrows what is accepted.
	v2, err := New(Options{PublicKeys: keys, Algorithms: []string{"ES256"}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v2.Verify(sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), "")); err == nil {
		t.Error("RS256 accepted with an ES256-only allow-list")
	}
}

func TestBadOptions(t *testing.T) {
	for name, o := range map[string]Options{
		"no key":       {},
		"two keys":     {Secret: secret, JWKSURL: "http://127.0.0.1:1/jwks"},
		"short secret": {Secret: []byte("short")},
		"alg none":     {Secret: secret, Algorithms: []string{"none"}},
		"unknown alg":  {Secret: secret, Algorithms: []string{"HS999"}},
		"bad key type": {PublicKeys: []crypto.PublicKey{"nope"}},
	} {
		if _, err := New(o); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := ParsePublicKeyPEM([]byte("junk")); err == nil {
		t.Error("junk PEM accepted")
	}
}

// jwksServer serves a JWK set that the test can change, counting fetches.
type jwksServer struct {
	mu      sync.Mutex
	set     *jwkset.MemoryJWKSet
	fetches atomic.Int32
	*httptest.Server
}

func newJWKSServer(t *testing.T) *jwksServer {
	s := &jwksServer{set: jwkset.NewMemoryStorage()}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.fetches.Add(1)
		s.mu.Lock()
		defer s.mu.Unlock()
		b, err := s.set.JSONPublic(r.Context())
		if err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write(b)
	}))
	t.Cleanup(s.Close)
	return s
}

func (s *jwksServer) add(t *testing.T, kid string, key any) {
	t.Helper()
	j, err := jwkset.NewJWKFromKey(key, jwkset.JWKOptions{Metadata: jwkset.JWKMetadataOptions{KID: kid}})
	if err != nil {
		t.Fatal(err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.set.KeyWrite(context.Background(), j); err != nil {
		t.Fatal(err)
	}
}

func TestJWKS(t *testing.T) {
	srv := newJWKSServer(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.add(t, "k1", &k1.PublicKey)
	v, err := New(Options{JWKSURL: srv.URL, JWKSUnknownKIDInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()

	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, claims(nil), "k1")); err != nil {
		t.Fatalf("k1 rejected: %v", err)
	}
	before := srv.fetches.Load()
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, claims(nil), "k1")); err != nil {
		t.Fatal(err)
	}
	if srv.fetches.Load() != before {
		t.Fatal("a known key caused a fetch: the set is not cached")
	}

	// A rotated-in key: the unknown kid triggers one refresh.
	k2, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	srv.add(t, "k2", &k2.PublicKey)
	if _, err := v.Verify(sign(t, jwt.SigningMethodES256, k2, claims(nil), "k2")); err != nil {
		t.Fatalf("rotated key rejected: %v", err)
	}
	afterRotation := srv.fetches.Load()
	if afterRotation != before+1 {
		t.Fatalf("fetches %d, want %d", afterRotation, before+1)
	}

	// Unknown kids after that are rate-limited: refused at once, no fetch.
	start := time.Now()
	for i := range 5 {
		if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, claims(nil), "nope"+string(rune('a'+i)))); err == nil {
			t.Fatal("unknown kid accepted")
		}
	}
	if srv.fetches.Load() != afterRotation {
		t.Fatalf("unknown kids caused %d fetches", srv.fetches.Load()-afterRotation)
	}
	if time.Since(start) > 5*time.Second {
		t.Fatal("rate-limited lookups waited instead of failing")
	}
}

func TestJWKSPeriodicRefresh(t *testing.T) {
	srv := newJWKSServer(t)
	k1, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.add(t, "k1", &k1.PublicKey)
	v, err := New(Options{JWKSURL: srv.URL, JWKSRefresh: 100 * time.Millisecond, JWKSUnknownKIDInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	// Use up the one unknown-kid refresh, so only the periodic refresh can
	// bring in the next key.
	if _, err := v.Verify(sign(t, jwt.SigningMethodRS256, k1, claims(nil), "spent")); err == nil {
		t.Fatal("unknown kid accepted")
	}
	k2, _ := rsa.GenerateKey(rand.Reader, 2048)
	srv.add(t, "k2", &k2.PublicKey)
	tok := sign(t, jwt.SigningMethodRS256, k2, claims(nil), "k2")
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := v.Verify(tok); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the key set was not refreshed in the background")
		}
		time.Sleep(50 * time.Millisecond)
	}
	// After Close, refreshes stop.
	v.Close()
	time.Sleep(150 * time.Millisecond)
	n := srv.fetches.Load()
	time.Sleep(400 * time.Millisecond)
	if srv.fetches.Load() != n {
		t.Fatal("refreshes go on after Close")
	}
}

func TestVerifiedTokenCache(t *testing.T) {
	v := hmacVerifier(t, func(o *Options) { o.Leeway = -1 })
	tok := sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["exp"] = time.Now().Add(1500 * time.Millisecond).Unix() }), "")
	first, err := v.Verify(tok)
	if err != nil {
		t.Fatal(err)
	}
	second, err := v.Verify(tok)
	if err != nil || second != first {
		t.Fatalf("second verification did not come from the cache: %v", err)
	}
	// A forged token with the same claims is not the cached one.
	parts := strings.Split(tok, ".")
	if _, err := v.Verify(parts[0] + "." + parts[1] + ".AAAA"); err == nil {
		t.Fatal("a forged signature passed")
	}
	time.Sleep(2100 * time.Millisecond)
	if _, err := v.Verify(tok); err == nil {
		t.Fatal("an expired token passed from the cache")
	}
	nc := hmacVerifier(t, func(o *Options) { o.CacheSize = -1 })
	a, _ := nc.Verify(tok2(t))
	b, _ := nc.Verify(tok2(t))
	if a == nil || a == b {
		t.Fatal("the cache is on though disabled")
	}
}

func tok2(t *testing.T) string {
	return sign(t, jwt.SigningMethodHS256, secret, claims(func(c jwt.MapClaims) { c["jti"] = "fixed" }), "")
}
