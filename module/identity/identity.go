// Package identity authenticates callers from a signed JWT in the
// Authorization header: the signature (HMAC secret, PEM public keys, or a
// JWKS URL), the algorithm allow-list, expiry, issuer and audience, and then
// the subject and groups claims, read defensively.
package identity

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/MicahParks/keyfunc/v3"
	"github.com/approval-gateway/gateway/module/identity/subject"
	"github.com/go-json-experiment/json/jsontext"
	"github.com/golang-jwt/jwt/v5"
	"go.uber.org/zap"
	"golang.org/x/time/rate"
)

// Identity is an authenticated caller.
type Identity struct {
	Subject string
	Groups  []string
	Claims  map[string]any
}

// Options configures a Verifier. Exactly one key source is needed: Secret,
// PublicKeys or JWKSURL.
type Options struct {
	// Secret is the HMAC key.
	Secret []byte
	// PublicKeys are RSA, ECDSA or Ed25519 public keys; a token verifies if
	// any of them verifies it.
	PublicKeys []crypto.PublicKey
	// JWKSURL is fetched, cached and refreshed in the background.
	JWKSURL string
	// JWKSRefresh is how often the JWKS is refreshed. Default 1h.
	JWKSRefresh time.Duration
	// JWKSUnknownKIDInterval is the least time between two refreshes caused
	// by a token with an unknown key ID. Default 5m.
	JWKSUnknownKIDInterval time.Duration
	// HTTPClient fetches the JWKS. Default: a client with a 10s timeout.
	HTTPClient *http.Client

	// Algorithms is the allow-list of signing algorithms. Default: derived
	// from the key type.
	Algorithms []string
	// Issuer and Audience, when set, must be in every token.
	Issuer   string
	Audience string
	// SubjectClaim and GroupsClaim are dotted paths into the claims.
	// Defaults: "sub" and "groups".
	SubjectClaim string
	GroupsClaim  string
	// Leeway is the clock skew tolerated on exp, nbf and iat. Default 30s;
	// negative means none.
	Leeway time.Duration

	// MaxTokenBytes refuses longer tokens before parsing them. Default
	// 16 KiB.
	MaxTokenBytes int
	// CacheSize bounds the cache of verified tokens (by SHA-256, until
	// their expiry), which spares the signature check of a token seen
	// before. Default 10,000; negative: no cache.
	CacheSize int

	Logger *zap.Logger
}

// DefaultMaxTokenBytes bounds a token when Options.MaxTokenBytes is zero.
const DefaultMaxTokenBytes = 16 << 10

// DefaultLeeway is the clock skew tolerated when Options.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	parser       *jwt.Parser
	keyfunc      jwt.Keyfunc
	subjectClaim []string
	groupsClaim  []string
	algorithms   []string
	maxBytes     int
	leeway       time.Duration
	cache        *tokenCache
	cancel       context.CancelFunc
}

// ErrNoToken is returned when the request carries no bearer token.
var ErrNoToken = errors.New("no bearer token")

// New builds a Verifier. A JWKS URL starts a background refresh that Close
// stops.
func New(opts Options) (*Verifier, error) {
	sources := 0
	for _, set := range []bool{len(opts.Secret) > 0, len(opts.PublicKeys) > 0, opts.JWKSURL != ""} {
		if set {
			sources++
		}
	}
	if sources != 1 {
		return nil, errors.New("exactly one of secret, key_file or jwks_url is required")
	}
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	v := &Verifier{cancel: func() {}, maxBytes: opts.MaxTokenBytes}
	if v.maxBytes <= 0 {
		v.maxBytes = DefaultMaxTokenBytes
	}

	var defaults []string
	switch {
	case len(opts.Secret) > 0:
		if len(opts.Secret) < 32 {
			return nil, errors.New("secret: an HMAC secret needs at least 32 bytes")
		}
		secret := slices.Clone(opts.Secret)
		v.keyfunc = func(*jwt.Token) (any, error) { return secret, nil }
		defaults = []string{"HS256", "HS384", "HS512"}
	case len(opts.PublicKeys) > 0:
		set := jwt.VerificationKeySet{}
		for i, k := range opts.PublicKeys {
			algs, err := algorithmsFor(k)
			if err != nil {
				return nil, fmt.Errorf("public key %d: %w", i+1, err)
			}
			set.Keys = append(set.Keys, k)
			for _, a := range algs {
				if !slices.Contains(defaults, a) {
					defaults = append(defaults, a)
				}
			}
		}
		v.keyfunc = func(*jwt.Token) (any, error) { return set, nil }
	default:
		ctx, cancel := context.WithCancel(context.Background())
		v.cancel = cancel
		client := opts.HTTPClient
		if client == nil {
			client = &http.Client{Timeout: 10 * time.Second}
		}
		refresh := opts.JWKSRefresh
		if refresh <= 0 {
			refresh = time.Hour
		}
		unknown := opts.JWKSUnknownKIDInterval
		if unknown <= 0 {
			unknown = 5 * time.Minute
		}
		url := opts.JWKSURL
		kf, err := keyfunc.NewDefaultOverrideCtx(ctx, []string{url}, keyfunc.Override{
			Client:          client,
			RefreshInterval: refresh,
			// A token with an unknown kid refreshes the set at most once per
			// interval; past that it fails at once instead of waiting, and an
			// allowed refresh gets the client's timeout.
			RateLimitWaitMax:  client.Timeout + time.Second,
			RefreshUnknownKID: rate.NewLimiter(rate.Every(unknown), 1),
			RefreshErrorHandlerFunc: func(string) func(context.Context, error) {
				return func(_ context.Context, err error) {
					logger.Warn("refreshing JWKS", zap.String("url", url), zap.Error(err))
				}
			},
		})
		if err != nil {
			cancel()
			return nil, fmt.Errorf("jwks_url %s: %v", url, err)
		}
		v.keyfunc = kf.Keyfunc
		defaults = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}
	}

	algs := opts.Algorithms
	if len(algs) == 0 {
		algs = defaults
	}
	for _, a := range algs {
		if strings.EqualFold(a, "none") || jwt.GetSigningMethod(a) == nil {
			v.cancel()
			return nil, fmt.Errorf("algorithms: %q is not a supported signing algorithm", a)
		}
	}
	v.algorithms = slices.Clone(algs)

	leeway := opts.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	popts := []jwt.ParserOption{
		jwt.WithValidMethods(v.algorithms),
		jwt.WithExpirationRequired(),
		jwt.WithLeeway(leeway),
		jwt.WithIssuedAt(),
	}
	if opts.Issuer != "" {
		popts = append(popts, jwt.WithIssuer(opts.Issuer))
	}
	if opts.Audience != "" {
		popts = append(popts, jwt.WithAudience(opts.Audience))
	}
	v.parser = jwt.NewParser(popts...)
	v.leeway = leeway
	if opts.CacheSize >= 0 {
		size := opts.CacheSize
		if size == 0 {
			size = 10000
		}
		v.cache = newTokenCache(size)
	}

	v.subjectClaim = claimPath(opts.SubjectClaim, "sub")
	v.groupsClaim = claimPath(opts.GroupsClaim, "groups")
	return v, nil
}

// Algorithms returns the allow-list in force.
func (v *Verifier) Algorithms() []string { return slices.Clone(v.algorithms) }

// Close stops background JWKS refreshes.
func (v *Verifier) Close() { v.cancel() }

// Authenticate verifies the bearer token of r.
func (v *Verifier) Authenticate(r *http.Request) (*Identity, error) {
	tok, err := BearerToken(r)
	if err != nil {
		return nil, err
	}
	return v.Verify(tok)
}

// BearerToken extracts the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	if h == "" {
		return "", ErrNoToken
	}
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(tok) == "" {
		return "", errors.New("the Authorization header is not a Bearer token")
	}
	return strings.TrimSpace(tok), nil
}

// Verify checks a raw token and returns the identity it carries. Errors
// never contain the token.
func (v *Verifier) Verify(raw string) (*Identity, error) {
	if len(raw) > v.maxBytes {
		return nil, fmt.Errorf("invalid token: longer than %d bytes", v.maxBytes)
	}
	now := time.Now()
	if id, ok := v.cache.get(raw, now); ok {
		return id, nil
	}
	claims := jwt.MapClaims{}
	if _, err := v.parser.ParseWithClaims(raw, claims, v.keyfunc); err != nil {
		return nil, fmt.Errorf("invalid token: %w", err)
	}
	if !StrictClaims(raw) {
		return nil, errors.New("invalid token: the claims are not I-JSON (invalid UTF-8, a lone surrogate or a repeated claim)")
	}
	id, err := v.Identify(claims)
	if err != nil {
		return nil, err
	}
	if exp, err := claims.GetExpirationTime(); err == nil && exp != nil {
		v.cache.put(raw, id, exp.Add(v.leeway))
	}
	return id, nil
}

// StrictClaims reports whether the claims of a compact JWS are I-JSON
// (RFC 7493), as RFC 7519 asks: Go's JSON decoder would read invalid
// UTF-8 and lone surrogates as U+FFFD and a repeated claim as its last
// value, so a subject could differ from what was signed. Ask it of a token
// that verified.
func StrictClaims(raw string) bool {
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return false
	}
	payload, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[1], "="))
	return err == nil && jsontext.Value(payload).IsValid()
}

// Identify reads the subject and groups from verified claims, with the
// configured claim paths (the console uses it for OpenID Connect ID tokens).
// The subject is kept exactly as issued; one that is empty, holds a
// control character or is not UTF-8 names nobody (subject.Check).
func (v *Verifier) Identify(claims map[string]any) (*Identity, error) {
	sub, ok := lookup(claims, v.subjectClaim)
	if !ok {
		return nil, fmt.Errorf("invalid token: no %s claim", strings.Join(v.subjectClaim, "."))
	}
	sv, ok := sub.(string)
	if !ok {
		return nil, fmt.Errorf("invalid token: claim %s is not a string", strings.Join(v.subjectClaim, "."))
	}
	if err := subject.Check(sv); err != nil {
		return nil, fmt.Errorf("invalid token: claim %s: %w", strings.Join(v.subjectClaim, "."), err)
	}
	groups, err := groupsOf(claims, v.groupsClaim)
	if err != nil {
		return nil, err
	}
	return &Identity{Subject: sv, Groups: groups, Claims: claims}, nil
}

// groupsOf reads the groups claim: absent means no groups; a list of
// strings or one space-separated string are accepted; anything else is an
// error.
func groupsOf(claims map[string]any, path []string) ([]string, error) {
	raw, ok := lookup(claims, path)
	if !ok || raw == nil {
		return []string{}, nil
	}
	bad := fmt.Errorf("invalid token: claim %s is neither a list of strings nor a string", strings.Join(path, "."))
	switch g := raw.(type) {
	case string:
		return strings.Fields(g), nil
	case []any:
		out := make([]string, 0, len(g))
		for _, e := range g {
			s, ok := e.(string)
			if !ok {
				return nil, bad
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, bad
}

// lookup follows a dotted claim path through nested objects.
func lookup(claims map[string]any, path []string) (any, bool) {
	var cur any = claims
	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil, false
		}
		if cur, ok = m[p]; !ok {
			return nil, false
		}
	}
	return cur, true
}

func claimPath(p, def string) []string {
	if p == "" {
		p = def
	}
	return strings.Split(p, ".")
}

// algorithmsFor lists the signing algorithms that a public key can verify.
func algorithmsFor(k crypto.PublicKey) ([]string, error) {
	switch key := k.(type) {
	case *rsa.PublicKey:
		return []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"}, nil
	case *ecdsa.PublicKey:
		switch key.Curve.Params().BitSize {
		case 256:
			return []string{"ES256"}, nil
		case 384:
			return []string{"ES384"}, nil
		case 521:
			return []string{"ES512"}, nil
		}
		return nil, fmt.Errorf("unsupported ECDSA curve %s", key.Curve.Params().Name)
	case ed25519.PublicKey:
		return []string{"EdDSA"}, nil
	}
	return nil, fmt.Errorf("unsupported public key type %T", k)
}
