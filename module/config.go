package approvalgateway

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/identity/subject"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/caddyserver/caddy/v2"
)

// StoreConfig chooses the store: Embedded (the default) or Etcd.
type StoreConfig struct {
	Embedded *EmbeddedStore `json:"embedded,omitempty"`
	Etcd     *EtcdStore     `json:"etcd,omitempty"`
}

// EmbeddedStore runs etcd inside the gateway process.
type EmbeddedStore struct {
	// Dir holds the data. Default: "approvals" in Caddy's data directory.
	Dir string `json:"dir,omitempty"`
	// Listen and ListenPeer are the client and peer URLs. Default: an
	// ephemeral loopback port each.
	Listen     string `json:"listen,omitempty"`
	ListenPeer string `json:"listen_peer,omitempty"`
	// Prefix of the keys. Default "/approvals/".
	Prefix string `json:"prefix,omitempty"`
}

// EtcdStore uses an external etcd cluster.
type EtcdStore struct {
	Endpoints []string `json:"endpoints,omitempty"`
	// Prefix of the keys. Default "/approvals/".
	Prefix string `json:"prefix,omitempty"`
	// TLS files: the CA to trust, and a client certificate and key.
	TLSCA   string `json:"tls_ca,omitempty"`
	TLSCert string `json:"tls_cert,omitempty"`
	TLSKey  string `json:"tls_key,omitempty"`
	// Username and Password for etcd authentication; use placeholders such
	// as {env.ETCD_PASSWORD} or {file./run/secrets/etcd} to keep them out of
	// the configuration.
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// DialTimeout bounds connecting. Default 5s.
	DialTimeout caddy.Duration `json:"dial_timeout,omitempty"`
	// Timeout bounds each store operation. Default 5s.
	Timeout caddy.Duration `json:"timeout,omitempty"`
}

// SealConfig is "replay_credentials sealed": AES-256-GCM keys, newest
// first (all open, the first seals), as base64 of 32 bytes; use
// placeholders such as {env.SEAL_KEY}.
type SealConfig struct {
	Keys    []string `json:"keys,omitempty"`
	Headers []string `json:"headers,omitempty"`
}

// NotifyRetry is how failed webhook deliveries are retried: first after
// Base, then after twice the last wait, at most Max, for Attempts tries in
// all. Defaults 1s, 10m and 12.
type NotifyRetry struct {
	Base     caddy.Duration `json:"base,omitempty"`
	Max      caddy.Duration `json:"max,omitempty"`
	Attempts int            `json:"attempts,omitempty"`
}

// AttestationConfig configures the attestation every replay carries
// (Approval-Attestation, a JWS signed with the gateways' shared Ed25519
// keys, published at {api_prefix}/.well-known/jwks.json).
type AttestationConfig struct {
	// Issuer is the "iss" claim. Default approval-gateway.
	Issuer string `json:"issuer,omitempty"`
	// Audience is the "aud" claim; none by default.
	Audience string `json:"audience,omitempty"`
	// Rotate makes a new signing key this often; the old one stays in the
	// JWKS until what it signed has expired. Default: no rotation.
	Rotate caddy.Duration `json:"rotate,omitempty"`
}

func (a *AttestationConfig) validate() error {
	if a.Rotate < 0 {
		return errors.New("attestation: rotate must be positive")
	}
	if a.Rotate > 0 && time.Duration(a.Rotate) < time.Hour {
		return errors.New("attestation: rotate must be at least 1h (a key is published 2m before it signs, and what it signs is valid 5m)")
	}
	return nil
}

// NotifyConfig is one webhook target. Targets come only from the
// configuration, and redirects are not followed.
type NotifyConfig struct {
	// Format is "webhook" (CloudEvents 1.0, structured) or "slack".
	Format string `json:"format,omitempty"`
	URL    string `json:"url,omitempty"`
	// Secret signs deliveries (Approval-Signature); use a placeholder.
	Secret string `json:"secret,omitempty"`
	// Events are the event types sent; all when empty.
	Events []string `json:"events,omitempty"`
	// Groups routes approver events of requests needing these groups here;
	// Requesters routes requester events of these subjects' requests here.
	// With neither, every event comes here.
	Groups     []string `json:"groups,omitempty"`
	Requesters []string `json:"requesters,omitempty"`
}

// ConsoleConfig sets up the web console's login: authorization code with
// PKCE against an OpenID provider.
type ConsoleConfig struct {
	// Issuer of the OpenID provider. Default: the identity jwt issuer.
	Issuer string `json:"issuer,omitempty"`
	// ClientID and ClientSecret of the gateway at the provider; use a
	// placeholder for the secret.
	ClientID     string `json:"client_id,omitempty"`
	ClientSecret string `json:"client_secret,omitempty"`
	// RedirectURL is where the provider sends the browser back. Default:
	// the request's scheme and host, then {api_prefix}/callback.
	RedirectURL string `json:"redirect_url,omitempty"`
	// Scopes besides openid. Default: profile email groups.
	Scopes []string `json:"scopes,omitempty"`
	// SessionTTL bounds a console session. Default 8h.
	SessionTTL caddy.Duration `json:"session_ttl,omitempty"`
}

// IdentityConfig chooses how callers are authenticated: a bearer JWT, or
// an identity another Caddy module already established.
type IdentityConfig struct {
	JWT         *JWTConfig         `json:"jwt,omitempty"`
	Placeholder *PlaceholderConfig `json:"placeholder,omitempty"`
}

// PlaceholderConfig takes the identity from an upstream auth layer: the
// subject from a placeholder (such as {http.auth.user.id}), the groups from
// a placeholder or a request header (comma- or space-separated). Only use a
// header that the layer in front sets and strips from clients.
type PlaceholderConfig struct {
	Subject           string `json:"subject,omitempty"`
	GroupsPlaceholder string `json:"groups_placeholder,omitempty"`
	GroupsHeader      string `json:"groups_header,omitempty"`
}

// Authenticate reads the identity the upstream layer set; an empty subject
// is unauthenticated, and one with a control character or not UTF-8 is
// refused.
func (p *PlaceholderConfig) Authenticate(r *http.Request) (*identity.Identity, error) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return nil, identity.ErrNoToken
	}
	sub := repl.ReplaceAll(p.Subject, "")
	if strings.TrimSpace(sub) == "" {
		return nil, identity.ErrNoToken
	}
	if err := subject.Check(sub); err != nil {
		// Kept exactly as the upstream layer gave it, or refused.
		return nil, err
	}
	raw := ""
	if p.GroupsPlaceholder != "" {
		raw = repl.ReplaceAll(p.GroupsPlaceholder, "")
	} else if p.GroupsHeader != "" {
		raw = strings.Join(r.Header.Values(p.GroupsHeader), ",")
	}
	groups := strings.FieldsFunc(raw, func(c rune) bool { return c == ',' || c == ' ' })
	return &identity.Identity{Subject: sub, Groups: groups, Claims: map[string]any{"sub": sub, "groups": groups}}, nil
}

// JWTConfig verifies bearer JWTs. Exactly one of Secret, KeyFiles and
// JWKSURL is required.
type JWTConfig struct {
	// Secret is the HMAC key (32 bytes or more); use a placeholder.
	Secret string `json:"secret,omitempty"`
	// KeyFiles are PEM public keys (RSA, ECDSA, Ed25519) or certificates.
	KeyFiles []string `json:"key_files,omitempty"`
	// JWKSURL is fetched, cached and refreshed.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Issuer and Audience, when set, are required in every token.
	Issuer   string `json:"issuer,omitempty"`
	Audience string `json:"audience,omitempty"`
	// Algorithms is the allow-list. Default: derived from the key type.
	Algorithms []string `json:"algorithms,omitempty"`
	// SubjectClaim and GroupsClaim are dotted claim paths. Defaults "sub"
	// and "groups".
	SubjectClaim string `json:"subject_claim,omitempty"`
	GroupsClaim  string `json:"groups_claim,omitempty"`
	// Leeway is the clock skew tolerated. Default 30s.
	Leeway caddy.Duration `json:"leeway,omitempty"`
}

// The validation of each block, once: Validate calls it for a JSON
// configuration, and the Caddyfile parser after each block, so both get
// the same errors (the Caddyfile's with file and line).

func (s *StoreConfig) validate() error {
	if s.Embedded != nil && s.Etcd != nil {
		return errors.New("store: choose embedded or etcd, not both")
	}
	if s.Etcd != nil && len(s.Etcd.Endpoints) == 0 {
		return errors.New("store etcd: endpoints are required")
	}
	return nil
}

func (i *IdentityConfig) validate() error {
	if (i.JWT == nil) == (i.Placeholder == nil) {
		return errors.New("identity: exactly one of identity jwt or identity placeholder is required")
	}
	if i.Placeholder != nil && i.Placeholder.Subject == "" {
		return errors.New("identity placeholder: a subject placeholder is required")
	}
	if j := i.JWT; j != nil {
		sources := 0
		for _, set := range []bool{j.Secret != "", len(j.KeyFiles) > 0, j.JWKSURL != ""} {
			if set {
				sources++
			}
		}
		if sources != 1 {
			return errors.New("identity jwt: exactly one of secret, key_file or jwks_url is required")
		}
	}
	return nil
}

func (s *SealConfig) validate() error {
	if len(s.Keys) == 0 {
		return errors.New("replay_credentials sealed: at least one key is required")
	}
	return nil
}

func (n *NotifyConfig) validate() error {
	if n.Format != "" && n.Format != "webhook" && n.Format != "slack" {
		return fmt.Errorf("notify: unknown target format %q (want webhook or slack)", n.Format)
	}
	if n.URL == "" {
		return errors.New("notify: a URL is required")
	}
	for _, e := range n.Events {
		if !slices.Contains(record.EventTypes, e) {
			return fmt.Errorf("notify %s: unknown event type %q (known: %s)", n.URL, e, strings.Join(record.EventTypes, ", "))
		}
	}
	return nil
}

func (r *NotifyRetry) validate() error {
	if r.Base < 0 || r.Max < 0 || r.Attempts < 0 {
		return errors.New("notify_retry: base, max and attempts must be positive")
	}
	return nil
}
