// Package demoidp is the demo's OpenID provider: zitadel's op package (a
// certified OpenID Connect provider library) over an in-memory store of
// the demo identities, with a page to pick an identity in place of a
// password. It serves the authorization code flow with PKCE to the
// console, and mints the demo's API tokens with the same key, so the
// console's sign-in and the API calls come from one issuer.
package demoidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// Identity is a person of the demo.
type Identity struct {
	Subject string
	// Role says what the identity does in the walk-through.
	Role   string
	Groups []string
}

// Options configure a provider.
type Options struct {
	// Issuer is the provider's URL as browsers and token verifiers see it;
	// its path (such as /oidc) is where Handler expects to be mounted.
	Issuer string
	// Identities may sign in, in the order the sign-in page shows them.
	Identities []Identity
	// RedirectURIs are the client's allowed redirect URIs.
	RedirectURIs []string
}

// Provider is a running demo provider.
type Provider struct {
	issuer     string
	prefix     string
	identities []Identity
	key        *rsa.PrivateKey
	keyID      string
	client     *client
	op         *op.Provider
	handler    http.Handler

	mu       sync.Mutex
	requests map[string]*authRequest // by id
	codes    map[string]string       // code -> request id
	tokens   map[string]accessToken  // by id
}

type accessToken struct {
	subject string
	expires time.Time
}

// requestTTL bounds an authorization request: from the console's redirect
// to the code's exchange.
const requestTTL = 10 * time.Minute

// New starts a provider for o.
func New(o Options) (*Provider, error) {
	u, err := url.Parse(o.Issuer)
	if err != nil || u.Host == "" {
		return nil, errors.New("demoidp: the issuer must be an absolute URL")
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, err
	}
	p := &Provider{issuer: strings.TrimRight(o.Issuer, "/"), prefix: strings.TrimRight(u.Path, "/"),
		identities: o.Identities, key: key, keyID: randomHex(8),
		client:   &client{id: "approval-gateway-demo", secret: randomHex(32), redirects: o.RedirectURIs},
		requests: map[string]*authRequest{}, codes: map[string]string{}, tokens: map[string]accessToken{}}
	p.client.loginURL = p.issuer + "/login?id="
	var crypto [32]byte
	if _, err := rand.Read(crypto[:]); err != nil {
		return nil, err
	}
	p.op, err = op.NewProvider(&op.Config{CryptoKey: crypto, CodeMethodS256: true},
		&storage{p}, op.StaticIssuer(p.issuer), op.WithAllowInsecure())
	if err != nil {
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /login", p.loginPage)
	mux.HandleFunc("POST /login", p.signIn)
	mux.Handle("/", p.op)
	p.handler = http.StripPrefix(p.prefix, mux)
	return p, nil
}

// Handler serves the provider at the issuer's path.
func (p *Provider) Handler() http.Handler { return p.handler }

// Issuer is the provider's issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// KeysPath is the path of the provider's JWKS, below the issuer's host.
func (p *Provider) KeysPath() string { return p.prefix + "/keys" }

// ClientID and ClientSecret are the console's client credentials.
func (p *Provider) ClientID() string     { return p.client.id }
func (p *Provider) ClientSecret() string { return p.client.secret }

// Token mints an API token for subject (which must be one of the
// identities), signed with the provider's key: iss, sub, groups, iat, exp.
func (p *Provider) Token(subject string, ttl time.Duration) (string, error) {
	id, ok := p.identity(subject)
	if !ok {
		return "", errors.New("demoidp: no identity " + subject)
	}
	now := time.Now()
	t := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{
		"iss": p.issuer, "sub": id.Subject, "groups": id.Groups,
		"iat": now.Unix(), "exp": now.Add(ttl).Unix(), "jti": uuid.NewString(),
	})
	t.Header["kid"] = p.keyID
	return t.SignedString(p.key)
}

func (p *Provider) identity(subject string) (Identity, bool) {
	for _, id := range p.identities {
		if id.Subject == subject {
			return id, true
		}
	}
	return Identity{}, false
}

func (p *Provider) now() time.Time { return time.Now() }

// expired reports whether authorization request a is past requestTTL.
func (p *Provider) expired(a *authRequest, now time.Time) bool {
	return now.Sub(a.created) > requestTTL
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// authRequest is an authorization request between the console's redirect
// and the code's exchange.
type authRequest struct {
	oidc.AuthRequest
	id       string
	created  time.Time
	subject  string
	authTime time.Time
	done     bool
}

func (a *authRequest) GetID() string         { return a.id }
func (a *authRequest) GetACR() string        { return "" }
func (a *authRequest) GetAMR() []string      { return nil } // no password: the identity is picked
func (a *authRequest) GetAudience() []string { return []string{a.ClientID} }
func (a *authRequest) GetAuthTime() time.Time {
	return a.authTime
}
func (a *authRequest) GetClientID() string { return a.ClientID }
func (a *authRequest) GetCodeChallenge() *oidc.CodeChallenge {
	if a.CodeChallenge == "" {
		return nil
	}
	return &oidc.CodeChallenge{Challenge: a.CodeChallenge, Method: a.CodeChallengeMethod}
}
func (a *authRequest) GetNonce() string                   { return a.Nonce }
func (a *authRequest) GetRedirectURI() string             { return a.RedirectURI }
func (a *authRequest) GetResponseType() oidc.ResponseType { return a.ResponseType }
func (a *authRequest) GetResponseMode() oidc.ResponseMode { return a.ResponseMode }
func (a *authRequest) GetScopes() []string                { return a.Scopes }
func (a *authRequest) GetState() string                   { return a.State }
func (a *authRequest) GetSubject() string                 { return a.subject }
func (a *authRequest) Done() bool                         { return a.done }

// client is the console: a confidential web client using the code flow.
type client struct {
	id, secret, loginURL string
	redirects            []string
}

func (c *client) GetID() string                       { return c.id }
func (c *client) RedirectURIs() []string              { return c.redirects }
func (c *client) PostLogoutRedirectURIs() []string    { return nil }
func (c *client) ApplicationType() op.ApplicationType { return op.ApplicationTypeWeb }
func (c *client) AuthMethod() oidc.AuthMethod         { return oidc.AuthMethodBasic }
func (c *client) ResponseTypes() []oidc.ResponseType {
	return []oidc.ResponseType{oidc.ResponseTypeCode}
}
func (c *client) GrantTypes() []oidc.GrantType        { return []oidc.GrantType{oidc.GrantTypeCode} }
func (c *client) LoginURL(id string) string           { return c.loginURL + url.QueryEscape(id) }
func (c *client) AccessTokenType() op.AccessTokenType { return op.AccessTokenTypeJWT }
func (c *client) IDTokenLifetime() time.Duration      { return time.Hour }
func (c *client) DevMode() bool                       { return false }
func (c *client) RestrictAdditionalIdTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) RestrictAdditionalAccessTokenScopes() func([]string) []string {
	return func(s []string) []string { return s }
}
func (c *client) IsScopeAllowed(scope string) bool     { return scope == "groups" }
func (c *client) IDTokenUserinfoClaimsAssertion() bool { return true }
func (c *client) ClockSkew() time.Duration             { return 0 }

// signingKey and publicKey are the provider's one RS256 key.
type signingKey struct{ p *Provider }

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.p.key }
func (k signingKey) ID() string                                  { return k.p.keyID }

type publicKey struct{ p *Provider }

func (k publicKey) ID() string                         { return k.p.keyID }
func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.p.key.PublicKey }

var errNotSupported = errors.New("not supported by the demo provider")

// storage is op.Storage over the provider's maps.
type storage struct{ p *Provider }

func (s *storage) CreateAuthRequest(_ context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	a := &authRequest{AuthRequest: *req, id: uuid.NewString(), created: s.p.now()}
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for id, r := range s.p.requests { // forget abandoned sign-ins
		if s.p.expired(r, a.created) {
			s.deleteLocked(id)
		}
	}
	s.p.requests[a.id] = a
	return a, nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	a, ok := s.p.requests[id]
	if !ok || s.p.expired(a, s.p.now()) {
		return nil, errors.New("no such authorization request")
	}
	return a, nil
}

func (s *storage) AuthRequestByCode(ctx context.Context, code string) (op.AuthRequest, error) {
	s.p.mu.Lock()
	id, ok := s.p.codes[code]
	s.p.mu.Unlock()
	if !ok {
		return nil, errors.New("no such code")
	}
	return s.AuthRequestByID(ctx, id)
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	if _, ok := s.p.requests[id]; !ok {
		return errors.New("no such authorization request")
	}
	s.p.codes[code] = id
	return nil
}

func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	s.deleteLocked(id)
	return nil
}

func (s *storage) deleteLocked(id string) {
	delete(s.p.requests, id)
	for code, rid := range s.p.codes {
		if rid == id {
			delete(s.p.codes, code)
		}
	}
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	id, exp := uuid.NewString(), s.p.now().Add(time.Hour)
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	for tid, t := range s.p.tokens {
		if s.p.now().After(t.expires) {
			delete(s.p.tokens, tid)
		}
	}
	s.p.tokens[id] = accessToken{subject: req.GetSubject(), expires: exp}
	return id, exp, nil
}

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNotSupported
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(context.Context, string, string) error { return nil }

func (s *storage) RevokeToken(_ context.Context, tokenID, _, _ string) *oidc.Error {
	s.p.mu.Lock()
	defer s.p.mu.Unlock()
	delete(s.p.tokens, tokenID)
	return nil
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return signingKey{s.p}, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) { return []op.Key{publicKey{s.p}}, nil }

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	if id != s.p.client.id {
		return nil, errors.New("no such client")
	}
	return s.p.client, nil
}

func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	if id != s.p.client.id || subtle.ConstantTimeCompare([]byte(secret), []byte(s.p.client.secret)) != 1 {
		return errors.New("wrong client credentials")
	}
	return nil
}

// SetUserinfoFromScopes is deprecated in op; SetUserinfoFromRequest fills
// the ID token's claims.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, scopes []string) error {
	return s.userinfo(info, req.GetSubject(), scopes)
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, subject, _ string) error {
	s.p.mu.Lock()
	t, ok := s.p.tokens[tokenID]
	s.p.mu.Unlock()
	if !ok || t.subject != subject || s.p.now().After(t.expires) {
		return errors.New("no such access token")
	}
	return s.userinfo(info, subject, []string{oidc.ScopeOpenID, oidc.ScopeProfile, "groups"})
}

func (s *storage) userinfo(info *oidc.UserInfo, subject string, scopes []string) error {
	id, ok := s.p.identity(subject)
	if !ok {
		return errors.New("no such identity")
	}
	info.Subject = id.Subject
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeProfile:
			info.PreferredUsername, info.Name = id.Subject, id.Subject
		case "groups":
			info.AppendClaims("groups", id.Groups)
		}
	}
	return nil
}

func (s *storage) SetIntrospectionFromToken(context.Context, *oidc.IntrospectionResponse, string, string, string) error {
	return errNotSupported
}

func (s *storage) GetPrivateClaimsFromScopes(_ context.Context, subject, _ string, scopes []string) (map[string]any, error) {
	id, ok := s.p.identity(subject)
	if !ok {
		return nil, errors.New("no such identity")
	}
	for _, sc := range scopes {
		if sc == "groups" {
			return map[string]any{"groups": id.Groups}, nil
		}
	}
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errNotSupported
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errNotSupported
}

func (s *storage) Health(context.Context) error { return nil }
