package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/attest"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
)

// Approval attestations: every replay carries a JWS, signed with a key set
// that every gateway on the store shares, which says what was approved, by
// whom, under which policy, for exactly which call. The backend verifies it
// against the JWKS the gateway publishes.

// AttestationSettings configure attestations; a zero value takes the
// defaults.
type AttestationSettings struct {
	// Issuer is the attestations' "iss". Default attest.DefaultIssuer.
	Issuer string
	// Audience is their "aud". Default: the site's name, so that a
	// backend can tell which site approved a call.
	Audience string
	// Rotate is how often a new signing key is made; none when zero.
	Rotate time.Duration
	// Publish is how long a new key is in the JWKS before it signs.
	// Default 2 minutes: longer than Refresh, so that every gateway
	// publishes it first.
	Publish time.Duration
	// Refresh is how often a gateway reads the key set again. Default 30s.
	Refresh time.Duration
}

// jwksPath is where the JWKS is served, under the prefix.
const jwksPath = "/.well-known/jwks.json"

// keySetName is the name of the attestation key set in the store.
const keySetName = "attestation"

// keyring is this gateway's copy of the shared key set.
type keyring struct {
	s    *Service
	mu   sync.Mutex
	set  *attest.Set
	read time.Time // when set was read from the store
}

// current returns the key set, read from the store (and brought up to
// date there) when this gateway's copy is older than the refresh period.
func (k *keyring) current(ctx context.Context) (*attest.Set, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.s.clock()
	if k.set != nil && now.Sub(k.read) < k.s.Attestation.Refresh {
		return k.set, nil
	}
	return k.load(ctx, now)
}

// load reads the key set, maintains it (a first key, rotation,
// retirement) and stores it back when it changed, fenced on the revision
// it read: of gateways doing it at once one wins and the others take its
// set. Called with mu held.
func (k *keyring) load(ctx context.Context, now time.Time) (*attest.Set, error) {
	sch := attest.Schedule{Rotate: k.s.Attestation.Rotate, Publish: k.s.Attestation.Publish}
	raw, rev, err := k.s.store.KeySet(ctx, keySetName)
	for range 5 {
		if err != nil {
			return nil, err
		}
		set := &attest.Set{}
		if raw != nil {
			if set, err = attest.Parse(raw); err != nil {
				return nil, err
			}
		}
		changed, err := set.Maintain(now, sch)
		if err != nil {
			return nil, err
		}
		if !changed {
			k.set, k.read = set, now
			return set, nil
		}
		b, err := json.Marshal(set)
		if err != nil {
			return nil, err
		}
		var ok bool
		ok, raw, rev, err = k.s.store.PutKeySet(ctx, keySetName, b, rev)
		if err == nil && ok {
			signing := ""
			if key := set.Signing(now); key != nil {
				signing = key.ID
			}
			k.s.log.Info("attestation keys updated", zap.Int("keys", len(set.Keys)), zap.String("signing", signing))
			k.set, k.read = set, now
			return set, nil
		}
	}
	return nil, errors.New("the attestation key set keeps changing")
}

// run keeps the key set current until ctx ends, so that a rotation is
// made and learnt without waiting for a replay.
func (k *keyring) run(ctx context.Context) {
	for {
		k.mu.Lock()
		_, err := k.load(ctx, k.s.clock())
		k.mu.Unlock()
		if err != nil && ctx.Err() == nil {
			k.s.log.Warn("reading the attestation keys", zap.Error(err))
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(k.s.Attestation.Refresh):
		}
	}
}

// attest signs the attestation of a replay of rec: the call rr with body.
func (s *Service) attest(ctx context.Context, rec *record.Record, rr *http.Request, body []byte) (string, error) {
	set, err := s.keys.current(ctx)
	if err != nil {
		return "", err
	}
	aud := s.Attestation.Audience
	if aud == "" {
		aud = s.Site
	}
	return set.Sign(attest.Attestation{Issuer: s.Attestation.Issuer, Audience: aud,
		RequestID: rec.ID, Requester: rec.Requester.Subject, Approvers: rec.ApprovedBy(), Policy: rec.Policy,
		Call: attest.CallOf(rr.Method, rr.URL.RequestURI(), body)}, s.clock())
}

// jwks serves the public keys that attestations are verified with; with
// ?all=true, every key the set ever held (for old audit checkpoints).
func (s *Service) jwks(w http.ResponseWriter, r *http.Request) {
	set, err := s.keys.current(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Cache-Control", "public, max-age=60")
	w.Header().Set("Content-Type", "application/jwk-set+json")
	b, _ := json.Marshal(set.Published(s.clock(), r.URL.Query().Get("all") == "true"))
	_, _ = w.Write(append(b, '\n'))
}
