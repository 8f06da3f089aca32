package attest

import (
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
)

var t0 = time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)

// A key's id is its RFC 7638 thumbprint: the example of RFC 8037 A.3.
func TestThumbprintIsRFC8037s(t *testing.T) {
	x, _ := b64dec("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
	if got := Thumbprint(x); got != "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k" {
		t.Fatalf("thumbprint %s", got)
	}
}

func b64dec(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// The schedule: a first key signs at once; a new one is published
// Publish before it signs; the old one is published until what it signed
// has expired, then loses its private half but stays in the full set.
func TestKeySchedule(t *testing.T) {
	sch := Schedule{Rotate: time.Hour, Publish: 2 * time.Minute}
	var s Set
	if changed, err := s.Maintain(t0, sch); err != nil || !changed || len(s.Keys) != 1 || s.Signing(t0) == nil {
		t.Fatalf("first key: %v %v %+v", changed, err, s)
	}
	first := s.Keys[0].ID
	if changed, _ := s.Maintain(t0.Add(59*time.Minute), sch); changed {
		t.Fatal("changed before the rotation period")
	}
	at := t0.Add(time.Hour)
	if changed, _ := s.Maintain(at, sch); !changed || len(s.Keys) != 2 {
		t.Fatalf("no rotation: %+v", s)
	}
	second := s.Keys[1].ID
	if k := s.Signing(at.Add(time.Minute)); k.ID != first {
		t.Fatal("the new key signs before its publication period ends")
	}
	if got := ids(s.Published(at, false)); got != first+" "+second {
		t.Fatalf("published %s", got)
	}
	active := at.Add(2 * time.Minute)
	s.Maintain(active, sch)
	if k := s.Signing(active); k.ID != second {
		t.Fatal("the new key does not sign")
	}
	if s.Keys[0].Until != active.Add(Lifetime+Skew) {
		t.Fatalf("the old key is valid until %v", s.Keys[0].Until)
	}
	if changed, _ := s.Maintain(active.Add(Lifetime+Skew), sch); changed || ids(s.Published(active.Add(Lifetime+Skew), false)) != first+" "+second {
		t.Fatal("the old key left too soon")
	}
	gone := active.Add(Lifetime + Skew + time.Second)
	if changed, _ := s.Maintain(gone, sch); !changed || s.Keys[0].Seed != nil {
		t.Fatal("the old key keeps its private half")
	}
	if got := ids(s.Published(gone, false)); got != second {
		t.Fatalf("published %s", got)
	}
	if got := ids(s.Published(gone, true)); got != first+" "+second {
		t.Fatalf("the full set is %s", got)
	}
	raw, _ := json.Marshal(s)
	if back, err := Parse(raw); err != nil || len(back.Keys) != 2 || back.Signing(gone).ID != second {
		t.Fatalf("round trip: %v", err)
	}
}

func ids(j JWKS) string {
	var out []string
	for _, k := range j.Keys {
		out = append(out, k.Kid)
	}
	return strings.Join(out, " ")
}

// A stored set whose key does not match its id or its private half is
// refused.
func TestParseRefusesMismatchedKeys(t *testing.T) {
	a, _ := NewKey(t0, t0)
	b, _ := NewKey(t0, t0)
	for name, k := range map[string]Key{
		"id":      {ID: b.ID, Public: a.Public, Seed: a.Seed},
		"private": {ID: a.ID, Public: a.Public, Seed: b.Seed},
		"short":   {ID: a.ID, Public: a.Public[:16]},
	} {
		raw, _ := json.Marshal(Set{Keys: []Key{k}})
		if _, err := Parse(raw); err == nil {
			t.Errorf("%s: a mismatched key was taken", name)
		}
	}
}

// An attestation verifies with the published key, and not after it
// expires, nor with another key, nor when a byte of it changes.
func TestSignAndVerify(t *testing.T) {
	var s Set
	s.Maintain(t0, Schedule{})
	tok, err := s.Sign(Attestation{RequestID: "r1", Requester: "alice", Approvers: []string{"bob"}, Policy: "p",
		Call: CallOf("POST", "/devices/1/wipe", nil)}, t0)
	if err != nil {
		t.Fatal(err)
	}
	keys := s.Published(t0, false).Public()
	at := func(now time.Time) jwt.ParserOption { return jwt.WithTimeFunc(func() time.Time { return now }) }
	var c Claims
	if err := Verify(tok, Type, keys, &c, at(t0.Add(4*time.Minute))); err != nil {
		t.Fatal(err)
	}
	if c.ID != "r1" || c.Subject != "alice" || c.Issuer != DefaultIssuer || c.Req.SHA256 != "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855" {
		t.Fatalf("claims %+v", c)
	}
	if err := Verify(tok, Type, keys, &Claims{}, at(t0.Add(6*time.Minute))); err == nil {
		t.Fatal("an expired attestation verified")
	}
	other, _ := NewKey(t0, t0)
	if err := Verify(tok, Type, map[string]ed25519.PublicKey{s.Keys[0].ID: other.Public}, &Claims{}, at(t0)); err == nil {
		t.Fatal("verified with another key")
	}
	parts := strings.Split(tok, ".")
	flip := byte('A')
	if parts[1][10] == 'A' {
		flip = 'B'
	}
	parts[1] = parts[1][:10] + string(flip) + parts[1][11:]
	if err := Verify(strings.Join(parts, "."), Type, keys, &Claims{}, at(t0)); err == nil {
		t.Fatal("a changed attestation verified")
	}
	if err := Verify(tok, "checkpoint+jwt", keys, &Claims{}, at(t0)); err == nil {
		t.Fatal("verified as another type")
	}
}
