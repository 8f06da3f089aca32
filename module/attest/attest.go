// Package attest signs what the gateway vouches for: approval attestations
// (a compact JWS on every replay, which the backend can verify) and the
// audit log's checkpoints. It holds the Ed25519 key set, its rotation, and
// the JWKS that publishes it. It knows nothing of etcd: the set is stored
// as JSON by whoever keeps it.
package attest

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Type is the JWS "typ" of an approval attestation.
const Type = "approval+jwt"

// DefaultIssuer is the "iss" of attestations unless configured.
const DefaultIssuer = "approval-gateway"

// Lifetime is how long an attestation is valid ("exp" - "iat").
const Lifetime = 5 * time.Minute

// Key is one Ed25519 key of the set. A new key is published (in the JWKS)
// before it signs, from Active on, so that every gateway and every
// backend's cached JWKS knows it by then; it stops signing when a newer
// key becomes active, and leaves the JWKS once nothing it signed is still
// valid. Its public half is kept after that, for the audit log's old
// checkpoints.
type Key struct {
	ID      string    `json:"kid"`
	Public  []byte    `json:"public"`
	Seed    []byte    `json:"seed,omitempty"` // the private key; dropped when the key is retired for good
	Created time.Time `json:"created_at"`
	Active  time.Time `json:"active_from"`
	// Until is when its last attestation expires: the next key's Active
	// plus Lifetime and the allowed clock skew. Zero while it signs.
	Until time.Time `json:"valid_until,omitzero"`
}

// Set is the gateway's key set, as stored (JSON), oldest key first.
type Set struct {
	Keys []Key `json:"keys"`
}

// Skew is the clock difference allowed between gateways, and between a
// gateway and a backend, in the key schedule.
const Skew = time.Minute

// NewKey returns a fresh key that signs from active on.
func NewKey(now, active time.Time) (Key, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return Key{}, err
	}
	return Key{ID: Thumbprint(pub), Public: pub, Seed: priv.Seed(), Created: now.UTC(), Active: active.UTC()}, nil
}

// Thumbprint is the RFC 7638 thumbprint of an Ed25519 public key
// (base64url of the SHA-256 of its canonical JWK): the key's id.
func Thumbprint(pub ed25519.PublicKey) string {
	canon := `{"crv":"Ed25519","kty":"OKP","x":"` + b64(pub) + `"}`
	sum := sha256.Sum256([]byte(canon))
	return b64(sum[:])
}

func b64(b []byte) string { return base64.RawURLEncoding.EncodeToString(b) }

// Parse reads a stored set and checks each key.
func Parse(raw []byte) (*Set, error) {
	var s Set
	if err := json.Unmarshal(raw, &s); err != nil {
		return nil, fmt.Errorf("the attestation key set does not parse: %w", err)
	}
	for _, k := range s.Keys {
		if len(k.Public) != ed25519.PublicKeySize || k.ID != Thumbprint(k.Public) {
			return nil, fmt.Errorf("attestation key %q is not an Ed25519 key of that id", k.ID)
		}
		if k.Seed != nil && (len(k.Seed) != ed25519.SeedSize || !ed25519.NewKeyFromSeed(k.Seed).Public().(ed25519.PublicKey).Equal(ed25519.PublicKey(k.Public))) {
			return nil, fmt.Errorf("attestation key %q: its private key does not match", k.ID)
		}
	}
	return &s, nil
}

// Signing is the key that signs at now: the newest active one with its
// private key. Nil when there is none.
func (s *Set) Signing(now time.Time) *Key {
	for i := len(s.Keys) - 1; i >= 0; i-- {
		if k := &s.Keys[i]; k.Seed != nil && !now.Before(k.Active) {
			return k
		}
	}
	return nil
}

// Schedule says when keys rotate: a new key every Rotate (none when zero),
// published Publish before it signs.
type Schedule struct {
	Rotate  time.Duration
	Publish time.Duration
}

// Maintain brings the set up to date at now: a first key (which signs at
// once) when there is none, a new key when the signing one is older than
// the rotation period and no newer one is waiting, the end of validity on
// keys that a newer active key has replaced, and the private half dropped
// from keys past it. It reports whether it changed anything.
func (s *Set) Maintain(now time.Time, sch Schedule) (bool, error) {
	changed := false
	if s.Signing(now) == nil && !slices.ContainsFunc(s.Keys, func(k Key) bool { return k.Seed != nil }) {
		k, err := NewKey(now, now)
		if err != nil {
			return false, err
		}
		s.Keys, changed = append(s.Keys, k), true
	}
	newest := &s.Keys[len(s.Keys)-1]
	if sch.Rotate > 0 && !now.Before(newest.Active) && now.Sub(newest.Active) >= sch.Rotate {
		k, err := NewKey(now, now.Add(sch.Publish))
		if err != nil {
			return false, err
		}
		s.Keys, changed = append(s.Keys, k), true
	}
	for i := range s.Keys[:len(s.Keys)-1] {
		k, next := &s.Keys[i], s.Keys[i+1]
		if k.Until.IsZero() && !now.Before(next.Active) {
			k.Until, changed = next.Active.Add(Lifetime+Skew), true
		}
		if k.Seed != nil && !k.Until.IsZero() && now.After(k.Until) {
			k.Seed, changed = nil, true
		}
	}
	return changed, nil
}

// JWK is one public key as RFC 7517 (and RFC 8037 for OKP) writes it.
type JWK struct {
	Kty string `json:"kty"`
	Crv string `json:"crv"`
	X   string `json:"x"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
}

// JWKS is a JSON Web Key Set.
type JWKS struct {
	Keys []JWK `json:"keys"`
}

// Published is the JWKS at now: every key that signs, will sign, or signed
// an attestation that may still be valid. With all, every key the set
// ever held (for the audit log's checkpoints).
func (s *Set) Published(now time.Time, all bool) JWKS {
	out := JWKS{Keys: []JWK{}}
	for _, k := range s.Keys {
		if all || k.Until.IsZero() || !now.After(k.Until) {
			out.Keys = append(out.Keys, JWK{Kty: "OKP", Crv: "Ed25519", X: b64(k.Public), Kid: k.ID, Alg: "EdDSA", Use: "sig"})
		}
	}
	return out
}

// Public returns the public keys of a JWKS by key id (Ed25519 keys only).
func (j JWKS) Public() map[string]ed25519.PublicKey {
	out := map[string]ed25519.PublicKey{}
	for _, k := range j.Keys {
		if k.Kty != "OKP" || k.Crv != "Ed25519" {
			continue
		}
		if x, err := base64.RawURLEncoding.DecodeString(k.X); err == nil && len(x) == ed25519.PublicKeySize {
			out[k.Kid] = x
		}
	}
	return out
}

// ErrNoKey is returned when there is no key to sign with.
var ErrNoKey = errors.New("no attestation key is active")
