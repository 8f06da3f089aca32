package attest

import (
	"crypto/ed25519"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

// Call is the call an attestation vouches for, as the gateway replays it.
type Call struct {
	Method string `json:"method"`
	// Target is the raw request target: the path and query, escapes
	// included, exactly as replayed.
	Target string `json:"target"`
	// SHA256 is the hex SHA-256 of the replayed body (of no bytes when
	// there is none).
	SHA256 string `json:"sha256"`
}

// CallOf describes a call from its parts.
func CallOf(method, target string, body []byte) Call {
	sum := sha256.Sum256(body)
	return Call{Method: method, Target: target, SHA256: hex.EncodeToString(sum[:])}
}

// Claims are an approval attestation's claims: jti is the request id, sub
// the requester.
type Claims struct {
	jwt.RegisteredClaims
	// Approvers are the approving subjects, in approval order.
	Approvers []string `json:"approvers"`
	Policy    string   `json:"policy"`
	Req       Call     `json:"req"`
}

// Attestation is what a replay is signed with.
type Attestation struct {
	Issuer    string
	Audience  string // none when empty
	RequestID string
	Requester string
	Approvers []string
	Policy    string
	Call      Call
}

// Sign signs a as a compact JWS with the set's signing key at now.
func (s *Set) Sign(a Attestation, now time.Time) (string, error) {
	k := s.Signing(now)
	if k == nil {
		return "", ErrNoKey
	}
	iss := a.Issuer
	if iss == "" {
		iss = DefaultIssuer
	}
	c := Claims{RegisteredClaims: jwt.RegisteredClaims{Issuer: iss, Subject: a.Requester, ID: a.RequestID,
		IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(Lifetime))},
		Approvers: a.Approvers, Policy: a.Policy, Req: a.Call}
	if c.Approvers == nil {
		c.Approvers = []string{}
	}
	if a.Audience != "" {
		c.Audience = jwt.ClaimStrings{a.Audience}
	}
	return signJWS(k, c, Type)
}

// signJWS signs claims with k as a compact JWS of type typ.
func signJWS(k *Key, claims jwt.Claims, typ string) (string, error) {
	t := jwt.NewWithClaims(jwt.SigningMethodEdDSA, claims)
	t.Header["typ"] = typ
	t.Header["kid"] = k.ID
	return t.SignedString(ed25519.NewKeyFromSeed(k.Seed))
}

// Verify checks a compact JWS of type typ against the keys (by key id) and
// reads its claims into claims. Expiry is checked as the claims say.
func Verify(token, typ string, keys map[string]ed25519.PublicKey, claims jwt.Claims, opts ...jwt.ParserOption) error {
	opts = append([]jwt.ParserOption{jwt.WithValidMethods([]string{jwt.SigningMethodEdDSA.Alg()})}, opts...)
	_, err := jwt.ParseWithClaims(token, claims, func(t *jwt.Token) (any, error) {
		if t.Header["typ"] != typ {
			return nil, fmt.Errorf("the token's type is %v, not %s", t.Header["typ"], typ)
		}
		kid, _ := t.Header["kid"].(string)
		k, ok := keys[kid]
		if !ok {
			return nil, fmt.Errorf("no key %q", kid)
		}
		return k, nil
	}, opts...)
	if err != nil {
		return errors.Join(errors.New("the signature does not verify"), err)
	}
	return nil
}

// CheckpointType is the JWS "typ" of an audit checkpoint.
const CheckpointType = "audit-checkpoint+jwt"

// CheckpointClaims vouch for the audit chain's hash at a seq.
type CheckpointClaims struct {
	jwt.RegisteredClaims
	Seq  int64  `json:"seq"`
	Hash string `json:"hash"`
	// Anchor marks the checkpoint of the last event pruning removed: the
	// log's new start, the only one a log may start after.
	Anchor bool `json:"anchor,omitempty"`
}

// SignCheckpoint signs the audit chain's hash at seq, as issuer, at now;
// anchor says it is the log's start after pruning.
func (s *Set) SignCheckpoint(issuer string, seq int64, hash string, anchor bool, now time.Time) (string, error) {
	k := s.Signing(now)
	if k == nil {
		return "", ErrNoKey
	}
	if issuer == "" {
		issuer = DefaultIssuer
	}
	return signJWS(k, CheckpointClaims{RegisteredClaims: jwt.RegisteredClaims{Issuer: issuer, IssuedAt: jwt.NewNumericDate(now)},
		Seq: seq, Hash: hash, Anchor: anchor}, CheckpointType)
}

// VerifyCheckpoint checks a checkpoint's signature against keys and
// returns its claims. A checkpoint does not expire.
func VerifyCheckpoint(token string, keys map[string]ed25519.PublicKey) (CheckpointClaims, error) {
	var c CheckpointClaims
	err := Verify(token, CheckpointType, keys, &c)
	if err == nil && (c.Seq < 1 || len(c.Hash) != 64) {
		err = errors.New("the checkpoint names no seq and hash")
	}
	return c, err
}
