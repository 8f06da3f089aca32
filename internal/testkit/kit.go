// Package testkit is what the gateway's tests share: real signed tokens, ports that stay free, an HTTP client that checks
// the contract's answers, a backend that records what reaches it, a
// settable clock, and waiting for a condition. It holds no mocks: every
// piece is the real component.
package testkit

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Token mints a real HS256 token for sub and groups, issued by issuer (if
// not empty), valid for an hour. Tokens minted at different times differ,
// which lets tests tell a parked call's token from a complete call's.
func Token(t testing.TB, secret, issuer, sub string, groups ...string) string {
	t.Helper()
	return Claims(t, secret, jwt.MapClaims{"sub": sub, "groups": groups, "iss": issuer})
}

// Claims mints a real HS256 token with claims, adding exp, iat and a
// unique jti; an empty iss is left out.
func Claims(t testing.TB, secret string, claims jwt.MapClaims) string {
	t.Helper()
	c := jwt.MapClaims{"exp": time.Now().Add(time.Hour).Unix(), "iat": time.Now().Unix(), "jti": time.Now().String()}
	for k, v := range claims {
		c[k] = v
	}
	if c["iss"] == "" {
		delete(c, "iss")
	}
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString([]byte(secret))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// WaitFor polls cond until it holds, failing the test after 20 seconds.
func WaitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Run runs fn in a goroutine with a context that ends when stop is called
// or the test ends; stop waits for fn to return.
func Run(t testing.TB, fn func(context.Context)) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(ctx)
	}()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return stop
}

// WritePolicy writes rego as the only policy of a fresh directory and
// returns the directory.
func WritePolicy(t testing.TB, rego string) string {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "p.rego"), []byte(rego), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}
