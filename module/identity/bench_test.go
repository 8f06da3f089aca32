package identity

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"testing"

	"github.com/golang-jwt/jwt/v5"
)

// BenchmarkVerify measures token verification per algorithm, with the
// verified-token cache and without.
func BenchmarkVerify(b *testing.B) {
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	edPub, edKey, _ := ed25519.GenerateKey(rand.Reader)
	cases := []struct {
		name   string
		method jwt.SigningMethod
		sign   any
		opts   Options
	}{
		{"HS256", jwt.SigningMethodHS256, secret, Options{Secret: secret}},
		{"RS256", jwt.SigningMethodRS256, rsaKey, Options{PublicKeys: []crypto.PublicKey{&rsaKey.PublicKey}}},
		{"ES256", jwt.SigningMethodES256, ecKey, Options{PublicKeys: []crypto.PublicKey{&ecKey.PublicKey}}},
		{"EdDSA", jwt.SigningMethodEdDSA, edKey, Options{PublicKeys: []crypto.PublicKey{edPub}}},
	}
	for _, tc := range cases {
		tok, err := jwt.NewWithClaims(tc.method, claims(nil)).SignedString(tc.sign)
		if err != nil {
			b.Fatal(err)
		}
		for _, cache := range []struct {
			name string
			size int
		}{{"nocache", -1}, {"cache", 0}} {
			b.Run(tc.name+"/"+cache.name, func(b *testing.B) {
				o := tc.opts
				o.CacheSize = cache.size
				v, err := New(o)
				if err != nil {
					b.Fatal(err)
				}
				b.ReportAllocs()
				for b.Loop() {
					if _, err := v.Verify(tok); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

// BenchmarkStrictClaims measures the I-JSON check of a token's claims,
// which Verify adds to a signature check (cache misses only).
func BenchmarkStrictClaims(b *testing.B) {
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, claims(nil)).SignedString(secret)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if !StrictClaims(tok) {
			b.Fatal("not I-JSON")
		}
	}
}
