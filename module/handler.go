// Package approvalgateway is the Caddy module of the approval gateway: a
// thin HTTP handler that adapts Caddy's configuration, logger and handler
// chain to the core in package approvals.
package approvalgateway

import (
	"context"
	"crypto"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/identity"
	gwmetrics "github.com/approval-gateway/gateway/module/metrics"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

func init() {
	caddy.RegisterModule(Handler{})
}

// Handler puts multi-admin approval in front of the handlers that follow
// it. Safe methods pass untouched; judged methods are authenticated,
// decided by the Rego policies, and passed, refused or parked until
// approved; the approval API is served under APIPrefix.
type Handler struct {
	// Store is where requests are kept. Default: an embedded etcd in
	// Caddy's data directory.
	Store *StoreConfig `json:"store,omitempty"`
	// Identity says how callers are authenticated. Required.
	Identity *IdentityConfig `json:"identity,omitempty"`
	// Policies is a directory of .rego, .json and .yaml files. Required.
	Policies string `json:"policies,omitempty"`
	// Query is the decision to evaluate. Default "data.approval.decision".
	Query string `json:"query,omitempty"`
	// Methods are judged. Default: every method but GET, HEAD, OPTIONS and
	// TRACE.
	Methods []string `json:"methods,omitempty"`
	// MaxBody is the largest body, in bytes as sent and as decoded, of a
	// judged call whose body a policy reads or that is parked (413 past
	// it); when no policy reads bodies, an allowed call's body streams
	// whatever its size. Default 1 MiB.
	MaxBody int64 `json:"max_body,omitempty"`
	// MethodOverride is what happens to a call that asks for another
	// method (X-HTTP-Method-Override, X-HTTP-Method, X-Method-Override, a
	// _method query or form field): "reject" (400 method_override, the
	// default) or "judge" (the policy judges the method asked for; the
	// call is stored and replayed as sent).
	MethodOverride string `json:"method_override,omitempty"`
	// AmbiguousPaths is what happens to a judged call whose path holds dot
	// segments, encoded slashes, backslashes, semicolons or encoded
	// control bytes, which backends resolve differently: "reject" (400
	// ambiguous_path, the default) or "judge" (the policy judges the
	// normalized path, with the raw one beside it).
	AmbiguousPaths string `json:"ambiguous_paths,omitempty"`
	// APIPrefix is where the approval API lives. Default "/.approvals".
	APIPrefix string `json:"api_prefix,omitempty"`
	// AdminGroups may list every request.
	AdminGroups []string `json:"admin_groups,omitempty"`
	// ApprovalExpiry is the time to reach the quorum. Default 720h.
	ApprovalExpiry caddy.Duration `json:"approval_expiry,omitempty"`
	// CompletionExpiry is the time from approval to completion. Default 720h.
	CompletionExpiry caddy.Duration `json:"completion_expiry,omitempty"`
	// MaxJustification is the longest justification in characters.
	// Default 2000.
	MaxJustification int `json:"max_justification,omitempty"`
	// RequireApprovalNotes refuses approvals without notes.
	RequireApprovalNotes bool `json:"require_approval_notes,omitempty"`
	// CaseSensitiveSubjects compares subjects exactly (self-approval, one
	// approval per identity, the requester's own actions, the pending cap).
	// Default: by Unicode case folding, since an e-mail address, UPN or
	// user name reaches the gateway in whatever case the identity provider
	// passes on. Set it only when subjects are case-sensitive opaque ids.
	CaseSensitiveSubjects bool `json:"case_sensitive_subjects,omitempty"`
	// MaxPendingPerIdentity caps each requester's pending requests (429
	// past it). Default 100; -1 means no cap.
	MaxPendingPerIdentity int `json:"max_pending_per_identity,omitempty"`
	// Complete is "manual" (the requester completes; the default) or
	// "auto" (the approval that meets the quorum replays). A decision's
	// "complete" overrides it.
	Complete string `json:"complete,omitempty"`
	// ClaimTimeout is how long a replay may stay claimed before it is
	// failed with an unknown outcome. Default 10m.
	ClaimTimeout caddy.Duration `json:"claim_timeout,omitempty"`
	// Retention is how long terminal requests are kept. Default 720h.
	Retention caddy.Duration `json:"retention,omitempty"`
	// AuditRetention is how long audit events are kept. Default 8760h.
	AuditRetention caddy.Duration `json:"audit_retention,omitempty"`
	// SweepInterval is how often the elected sweeper runs. Default 1m.
	SweepInterval caddy.Duration `json:"sweep_interval,omitempty"`
	// PolicyApprovers approve runtime policy changes, one from each group.
	// Default: AdminGroups.
	PolicyApprovers []string `json:"policy_approvers,omitempty"`
	// ReplayCredentials seals the requester's Authorization (and listed
	// headers) of auto-complete requests, for their replay.
	ReplayCredentials *SealConfig `json:"replay_credentials,omitempty"`
	// Notify lists the webhook targets of the events.
	Notify []NotifyConfig `json:"notify,omitempty"`
	// ReminderLead is how long before expiry an expiring event is raised.
	// Default 24h.
	ReminderLead caddy.Duration `json:"reminder_lead,omitempty"`
	// PublicURL is the gateway's base URL in notification links, such as
	// https://admin.example.com.
	PublicURL string `json:"public_url,omitempty"`
	// Console turns on the web console with OpenID Connect login.
	Console *ConsoleConfig `json:"console,omitempty"`
	// WatchPolicies reloads the policy directory when its files change.
	// Default true; set false to reload only with the configuration.
	WatchPolicies *bool `json:"watch_policies,omitempty"`

	svc      *approvals.Service
	stoppers []func()
	verifier *identity.Verifier
	storeKey string
	logger   *zap.Logger
}

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
// is unauthenticated.
func (p *PlaceholderConfig) Authenticate(r *http.Request) (*identity.Identity, error) {
	repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer)
	if !ok {
		return nil, identity.ErrNoToken
	}
	sub := strings.TrimSpace(repl.ReplaceAll(p.Subject, ""))
	if sub == "" {
		return nil, identity.ErrNoToken
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

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.approval_gateway",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision loads the policies, builds the verifier and connects the store.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	repl := caddy.NewReplacer()
	if h.Identity == nil || (h.Identity.JWT == nil) == (h.Identity.Placeholder == nil) {
		return errors.New("identity: exactly one of identity jwt or identity placeholder is required")
	}
	if h.Policies == "" {
		return errors.New("policies: a policy directory is required")
	}
	var auth approvals.Authenticator = h.Identity.Placeholder
	identify := func(map[string]any) (*identity.Identity, error) { return nil, errors.New("no claim reader") }
	if h.Identity.JWT != nil {
		ver, err := newVerifier(h.Identity.JWT, repl, h.logger)
		if err != nil {
			return fmt.Errorf("identity jwt: %w", err)
		}
		h.verifier, auth, identify = ver, ver, ver.Identify
	} else if h.Identity.Placeholder.Subject == "" {
		return errors.New("identity placeholder: a subject placeholder is required")
	}

	pol, err := policy.NewReloader(ctx, repl.ReplaceKnown(h.Policies, ""), h.Query, nil, h.logger.Named("policies"))
	if err != nil {
		return err
	}
	var metrics *gwmetrics.Metrics
	st, err := h.provisionStore(repl, func(op string, d time.Duration, err error) { metrics.ObserveStore(op, d, err) })
	if err != nil {
		return err
	}
	metrics, err = gwmetrics.New(ctx.GetMetricsRegistry(), func() float64 {
		cctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		n, err := st.CountPending(cctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	var console *approvals.ConsoleOptions
	if c := h.Console; c != nil {
		issuer := repl.ReplaceKnown(c.Issuer, "")
		if issuer == "" && h.Identity.JWT != nil {
			issuer = repl.ReplaceKnown(h.Identity.JWT.Issuer, "")
		}
		console = &approvals.ConsoleOptions{Issuer: issuer, ClientID: repl.ReplaceKnown(c.ClientID, ""),
			ClientSecret: repl.ReplaceKnown(c.ClientSecret, ""), RedirectURL: repl.ReplaceKnown(c.RedirectURL, ""),
			Scopes: c.Scopes, SessionTTL: time.Duration(c.SessionTTL), Identify: identify,
			// Behind an upstream auth layer the console takes the identity
			// from each request, unless an OpenID client is configured.
			RequestIdentity: h.Identity.Placeholder != nil && c.ClientID == ""}
	}
	var sealer *approvals.Sealer
	if c := h.ReplayCredentials; c != nil {
		var keys [][]byte
		for i, k := range c.Keys {
			b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(repl.ReplaceKnown(k, "")))
			if err != nil {
				return fmt.Errorf("replay_credentials: key %d is not base64", i+1)
			}
			keys = append(keys, b)
		}
		if sealer, err = approvals.NewSealer(keys, c.Headers); err != nil {
			return err
		}
	}
	var hooks []approvals.Webhook
	for _, n := range h.Notify {
		format := "cloudevents"
		if n.Format == "slack" {
			format = "slack"
		}
		hooks = append(hooks, approvals.Webhook{URL: repl.ReplaceKnown(n.URL, ""), Secret: repl.ReplaceKnown(n.Secret, ""),
			Events: n.Events, Format: format, Groups: n.Groups, Requesters: n.Requesters})
	}
	h.svc, err = approvals.New(approvals.Options{
		Annotate: h.annotate(ctx), Sealer: sealer,
		Console: console, Webhooks: hooks, ReminderLead: time.Duration(h.ReminderLead), PublicURL: repl.ReplaceKnown(h.PublicURL, ""), Metrics: metrics,
		Store: st, Identity: auth, Policies: pol, PolicyApprovers: h.PolicyApprovers,
		Methods: h.Methods, MaxBody: h.MaxBody, JudgeMethodOverride: h.MethodOverride == "judge", JudgeAmbiguousPaths: h.AmbiguousPaths == "judge", Prefix: h.APIPrefix, AdminGroups: h.AdminGroups,
		ApprovalExpiry: time.Duration(h.ApprovalExpiry), CompletionExpiry: time.Duration(h.CompletionExpiry),
		MaxJustification: h.MaxJustification, RequireApprovalNotes: h.RequireApprovalNotes, CaseSensitiveSubjects: h.CaseSensitiveSubjects,
		MaxPendingPerIdentity: h.MaxPendingPerIdentity, AutoComplete: h.Complete == "auto",
		ClaimTimeout: time.Duration(h.ClaimTimeout), Retention: time.Duration(h.Retention),
		AuditRetention: time.Duration(h.AuditRetention), SweepInterval: time.Duration(h.SweepInterval),
		ClientIP: clientIP, Logger: h.logger,
	})
	if err != nil {
		return err
	}
	h.stoppers = append(h.stoppers, h.svc.StartPolicyWatch(5*time.Second), h.svc.StartSweeper(), h.svc.StartNotifier())
	if h.WatchPolicies == nil || *h.WatchPolicies {
		wctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{})
		go func() {
			defer close(done)
			if err := pol.Watch(wctx, 250*time.Millisecond); err != nil {
				h.logger.Warn("watching the policy directory", zap.Error(err))
			}
		}()
		h.stoppers = append(h.stoppers, func() { cancel(); <-done })
	}
	h.logger.Info("approval gateway ready", zap.Strings("policy_files", pol.Status().Files))
	return nil
}

// Validate checks the configuration for mistakes Provision does not catch.
func (h *Handler) Validate() error {
	if h.Store != nil && h.Store.Embedded != nil && h.Store.Etcd != nil {
		return errors.New("store: choose embedded or etcd, not both")
	}
	switch h.Complete {
	case "", "manual", "auto":
	default:
		return fmt.Errorf("complete: %q is not auto or manual", h.Complete)
	}
	for name, v := range map[string]string{"method_override": h.MethodOverride, "ambiguous_paths": h.AmbiguousPaths} {
		if v != "" && v != "reject" && v != "judge" {
			return fmt.Errorf("%s: %q is not reject or judge", name, v)
		}
	}
	for _, n := range h.Notify {
		for _, e := range n.Events {
			if !slices.Contains(record.EventTypes, e) {
				return fmt.Errorf("notify %s: unknown event type %q (known: %s)", n.URL, e, strings.Join(record.EventTypes, ", "))
			}
		}
	}
	return nil
}

// Cleanup releases the store (shared with other configurations through the
// pool) and stops JWKS refreshes. It works after a failed Provision.
func (h *Handler) Cleanup() error {
	for _, stop := range h.stoppers {
		stop()
	}
	h.stoppers = nil
	if h.verifier != nil {
		h.verifier.Close()
	}
	if h.storeKey != "" {
		if _, err := stores.Delete(h.storeKey); err != nil {
			return err
		}
		h.storeKey = ""
	}
	return nil
}

// ServeHTTP hands the request to the core, with the rest of the chain as
// where allowed calls and replays go.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	return h.svc.ServeHTTP(w, r, func(w http.ResponseWriter, rr *http.Request) error {
		if rr != r {
			rr = ownPlaceholders(rr)
		}
		return next.ServeHTTP(w, rr)
	})
}

// ownPlaceholders gives a request the core made (a replay of a stored
// call) placeholders and variables of its own: {uri}, {path} and the rest
// describe the replayed call, not the complete call it runs within, so a
// rewrite or header_up after the gateway sees the call that was approved.
func ownPlaceholders(rr *http.Request) *http.Request {
	vars, _ := rr.Context().Value(caddyhttp.VarsCtxKey).(map[string]any)
	ctx := context.WithValue(rr.Context(), caddyhttp.VarsCtxKey, maps.Clone(vars))
	ctx = context.WithValue(ctx, caddyhttp.OriginalRequestCtxKey, *rr)
	rr = rr.WithContext(ctx)
	caddyhttp.NewTestReplacer(rr) // binds a replacer for rr to rr's context
	return rr
}

// annotate sets the placeholders {http.approval.id}, {http.approval.status}
// and {http.approval.policy} on the request (so access logs can carry them
// with log_append) and emits the Caddy event (approval_parked,
// approval_decided, approval_approved, …).
func (h *Handler) annotate(ctx caddy.Context) func(*http.Request, string, string, *record.Record) {
	var events *caddyevents.App
	if app, err := ctx.App("events"); err == nil {
		events, _ = app.(*caddyevents.App)
	}
	return func(r *http.Request, name, policy string, rec *record.Record) {
		data := map[string]any{"policy": policy}
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set("http.approval.policy", policy)
			if rec != nil {
				repl.Set("http.approval.status", string(rec.Status))
				if rec.ID != "" {
					repl.Set("http.approval.id", rec.ID)
				}
			}
		}
		if rec != nil {
			data["id"], data["status"], data["resource"] = rec.ID, string(rec.Status), rec.Resource
		}
		if events != nil {
			events.Emit(ctx, name, data)
		}
	}
}

// clientIP is the client address Caddy determined (trusted proxies
// honoured), falling back to the connection's.
func clientIP(r *http.Request) string {
	if ip, ok := caddyhttp.GetVar(r.Context(), caddyhttp.ClientIPVarKey).(string); ok && ip != "" {
		return ip
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func newVerifier(c *JWTConfig, repl *caddy.Replacer, logger *zap.Logger) (*identity.Verifier, error) {
	o := identity.Options{
		Issuer: repl.ReplaceKnown(c.Issuer, ""), Audience: repl.ReplaceKnown(c.Audience, ""),
		JWKSURL: repl.ReplaceKnown(c.JWKSURL, ""), Algorithms: c.Algorithms,
		SubjectClaim: c.SubjectClaim, GroupsClaim: c.GroupsClaim, Leeway: time.Duration(c.Leeway),
		Logger: logger,
	}
	if c.Secret != "" {
		s := repl.ReplaceKnown(c.Secret, "")
		if s == "" {
			return nil, errors.New("secret: the placeholder gave an empty secret")
		}
		o.Secret = []byte(s)
	}
	for _, f := range c.KeyFiles {
		k, err := identity.LoadPublicKeyFile(repl.ReplaceKnown(f, ""))
		if err != nil {
			return nil, fmt.Errorf("key_file: %w", err)
		}
		o.PublicKeys = append(o.PublicKeys, crypto.PublicKey(k))
	}
	return identity.New(o)
}

// defaultEmbeddedDir is where the embedded store keeps its data by default.
func defaultEmbeddedDir() string { return filepath.Join(caddy.AppDataDir(), "approvals") }

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
