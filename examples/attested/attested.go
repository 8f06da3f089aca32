// Package attested is the pattern for a backend that carries out a
// protected call only when the approval gateway attests that it was
// approved: a valid Approval-Attestation whose "req" is this very call,
// used once. It is the whole check; copy it into any Go backend.
package attested

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
)

// Require returns a middleware that refuses (403) every call that does not
// carry a valid attestation for exactly this call: signed by a key of the
// gateway's JWKS, of type approval+jwt from issuer, unexpired, naming this
// method, raw target and body, and not seen before.
func Require(ctx context.Context, jwksURL, issuer string) (func(http.Handler) http.Handler, error) {
	keys, err := keyfunc.NewDefaultCtx(ctx, []string{jwksURL})
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	seen := map[string]time.Time{} // attestation ids, until they expire
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 10<<20))
			if err != nil {
				http.Error(w, "the body cannot be read", http.StatusBadRequest)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
			var c struct {
				jwt.RegisteredClaims
				Req struct{ Method, Target, SHA256 string } `json:"req"`
			}
			_, err = jwt.ParseWithClaims(r.Header.Get("Approval-Attestation"), &c, func(t *jwt.Token) (any, error) {
				if t.Header["typ"] != "approval+jwt" {
					return nil, jwt.ErrTokenUnverifiable
				}
				return keys.Keyfunc(t)
			}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(issuer), jwt.WithExpirationRequired())
			sum := sha256.Sum256(body)
			if err != nil || c.ID == "" || c.Req.Method != r.Method || c.Req.Target != r.RequestURI || c.Req.SHA256 != hex.EncodeToString(sum[:]) {
				http.Error(w, "this call needs the approval gateway's attestation of an approval", http.StatusForbidden)
				return
			}
			mu.Lock()
			for id, exp := range seen {
				if time.Now().After(exp) {
					delete(seen, id)
				}
			}
			_, used := seen[c.ID]
			seen[c.ID] = c.ExpiresAt.Time
			mu.Unlock()
			if used {
				http.Error(w, "this approval was carried out already", http.StatusForbidden)
				return
			}
			next.ServeHTTP(w, r)
		})
	}, nil
}
