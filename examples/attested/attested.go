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
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/dunglas/httpsfv"
	"github.com/golang-jwt/jwt/v5"
)

// ApprovedBy reads a replay's Approval-Approved-By: a Structured Field
// List (RFC 9651) of the approvers' subjects in approval order, each a
// String, or a Display String beyond ASCII. Never split it on commas: a
// subject may hold one.
func ApprovedBy(h http.Header) ([]string, error) {
	list, err := httpsfv.UnmarshalList(h.Values("Approval-Approved-By"))
	if err != nil {
		return nil, err
	}
	out := make([]string, 0, len(list))
	for _, m := range list {
		item, ok := m.(httpsfv.Item)
		if !ok {
			return nil, errors.New("Approval-Approved-By holds an inner list")
		}
		switch v := item.Value.(type) {
		case string:
			out = append(out, v)
		case httpsfv.DisplayString:
			out = append(out, string(v))
		default:
			return nil, fmt.Errorf("Approval-Approved-By holds %v, not a subject", v)
		}
	}
	return out, nil
}

type approversKey struct{}

// Approvers are who approved the call that Require let through, as its
// attestation names them.
func Approvers(r *http.Request) []string {
	a, _ := r.Context().Value(approversKey{}).([]string)
	return a
}

// Require returns a middleware that refuses (403) every call that does not
// carry a valid attestation for exactly this call: signed by a key of the
// gateway's JWKS, of type approval+jwt from issuer for audience (the
// gateway's site, or its attestation audience), unexpired, naming this
// method, raw target and body, whose approvers Approval-Approved-By names,
// and not seen before. The handler reads the approvers with Approvers.
func Require(ctx context.Context, jwksURL, issuer, audience string) (func(http.Handler) http.Handler, error) {
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
				Approvers []string                                `json:"approvers"`
				Req       struct{ Method, Target, SHA256 string } `json:"req"`
			}
			_, err = jwt.ParseWithClaims(r.Header.Get("Approval-Attestation"), &c, func(t *jwt.Token) (any, error) {
				if t.Header["typ"] != "approval+jwt" {
					return nil, jwt.ErrTokenUnverifiable
				}
				return keys.Keyfunc(t)
			}, jwt.WithValidMethods([]string{"EdDSA"}), jwt.WithIssuer(issuer), jwt.WithAudience(audience), jwt.WithExpirationRequired())
			sum := sha256.Sum256(body)
			if err != nil || c.ID == "" || c.Req.Method != r.Method || c.Req.Target != r.RequestURI || c.Req.SHA256 != hex.EncodeToString(sum[:]) {
				http.Error(w, "this call needs the approval gateway's attestation of an approval", http.StatusForbidden)
				return
			}
			if approvers, err := ApprovedBy(r.Header); err != nil || !slices.Equal(approvers, c.Approvers) {
				http.Error(w, "Approval-Approved-By does not name the attestation's approvers", http.StatusForbidden)
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
			next.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), approversKey{}, c.Approvers)))
		})
	}, nil
}
