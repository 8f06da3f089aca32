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
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/console"
	"github.com/approval-gateway/gateway/module/identity"
	gwmetrics "github.com/approval-gateway/gateway/module/metrics"
	"github.com/approval-gateway/gateway/module/notify"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyevents"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"go.uber.org/zap"
)

// Building the parts from the configuration: placeholders ({env.X},
// {file.Y}) are read here, so secrets never appear in the adapted JSON.

// settings are the request flow's settings.
func (h *Handler) settings() approvals.Settings {
	return approvals.Settings{
		Methods: h.Methods, MaxBody: h.MaxBody, JudgeMethodOverride: h.MethodOverride == "judge", JudgeAmbiguousPaths: h.AmbiguousPaths == "judge",
		Prefix: h.APIPrefix, AdminGroups: h.AdminGroups, PolicyApprovers: h.PolicyApprovers,
		ApprovalExpiry: time.Duration(h.ApprovalExpiry), CompletionExpiry: time.Duration(h.CompletionExpiry),
		MaxJustification: h.MaxJustification, RequireApprovalNotes: h.RequireApprovalNotes,
		MaxPendingPerIdentity: h.MaxPendingPerIdentity, AutoComplete: h.Complete == "auto",
		ClaimTimeout: time.Duration(h.ClaimTimeout), Retention: time.Duration(h.Retention),
		AuditRetention: time.Duration(h.AuditRetention), SweepInterval: time.Duration(h.SweepInterval),
		CheckpointInterval: time.Duration(h.CheckpointInterval),
		ReminderLead:       time.Duration(h.ReminderLead), CaseSensitiveSubjects: h.CaseSensitiveSubjects,
		Attestation: h.attestation(), Site: h.site(),
	}
}

// site is the handler's site name, the default one when it names none.
func (h *Handler) site() string {
	if h.Site == "" {
		return approvals.DefaultSite
	}
	return h.Site
}

// eventSource is the CloudEvents source of the handler's events: the
// gateway, its site (unless the default) and its prefix.
func (h *Handler) eventSource() string {
	prefix := h.APIPrefix
	if prefix == "" {
		prefix = approvals.DefaultPrefix
	}
	if site := h.site(); site != approvals.DefaultSite {
		return "approval-gateway/" + site + prefix
	}
	return "approval-gateway" + prefix
}

// attestation is what replays are attested with.
func (h *Handler) attestation() approvals.AttestationSettings {
	if h.Attestation == nil {
		return approvals.AttestationSettings{}
	}
	repl := caddy.NewReplacer()
	return approvals.AttestationSettings{Issuer: repl.ReplaceKnown(h.Attestation.Issuer, ""),
		Audience: repl.ReplaceKnown(h.Attestation.Audience, ""), Rotate: time.Duration(h.Attestation.Rotate)}
}

// authenticator is how callers are authenticated, and how the console
// reads an ID token's claims.
func (h *Handler) authenticator(repl *caddy.Replacer) (approvals.Authenticator, func(map[string]any) (*identity.Identity, error), error) {
	if h.Identity.Placeholder != nil {
		return h.Identity.Placeholder, func(map[string]any) (*identity.Identity, error) { return nil, errors.New("no claim reader") }, nil
	}
	ver, err := newVerifier(h.Identity.JWT, repl, h.logger)
	if err != nil {
		return nil, nil, fmt.Errorf("identity jwt: %w", err)
	}
	h.verifier = ver
	return ver, ver.Identify, nil
}

// newMetrics registers the metrics with Caddy's registry, the pending
// gauge read from the store at scrape time.
func newMetrics(ctx caddy.Context, st *store.Store) (*gwmetrics.Metrics, error) {
	m, err := gwmetrics.New(ctx.GetMetricsRegistry(), func() float64 {
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		n, err := st.CountPending(cctx)
		if err != nil {
			return -1
		}
		return float64(n)
	})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}

// sealer seals replay credentials, when configured.
func (h *Handler) sealer(repl *caddy.Replacer) (*approvals.Sealer, error) {
	c := h.ReplayCredentials
	if c == nil {
		return nil, nil
	}
	var keys [][]byte
	for i, k := range c.Keys {
		b, err := base64.StdEncoding.DecodeString(strings.TrimSpace(repl.ReplaceKnown(k, "")))
		if err != nil {
			return nil, fmt.Errorf("replay_credentials: key %d is not base64", i+1)
		}
		keys = append(keys, b)
	}
	return approvals.NewSealer(keys, c.Headers)
}

// webhooks are the notifier's targets.
func (h *Handler) webhooks(repl *caddy.Replacer) []notify.Webhook {
	var hooks []notify.Webhook
	for _, n := range h.Notify {
		format := "cloudevents"
		if n.Format == "slack" {
			format = "slack"
		}
		hooks = append(hooks, notify.Webhook{URL: repl.ReplaceKnown(n.URL, ""), Secret: repl.ReplaceKnown(n.Secret, ""),
			Events: n.Events, Format: format, Groups: n.Groups, Requesters: n.Requesters})
	}
	return hooks
}

// backoff is the notifier's retry schedule.
func (h *Handler) backoff() notify.Backoff {
	if h.NotifyRetry == nil {
		return notify.Backoff{}
	}
	return notify.Backoff{Base: time.Duration(h.NotifyRetry.Base), Max: time.Duration(h.NotifyRetry.Max), Attempts: h.NotifyRetry.Attempts}
}

// consoleOptions are the console's login settings.
func (h *Handler) consoleOptions(repl *caddy.Replacer, identify func(map[string]any) (*identity.Identity, error)) console.Options {
	c := h.Console
	issuer := repl.ReplaceKnown(c.Issuer, "")
	if issuer == "" && h.Identity.JWT != nil {
		issuer = repl.ReplaceKnown(h.Identity.JWT.Issuer, "")
	}
	return console.Options{Issuer: issuer, ClientID: repl.ReplaceKnown(c.ClientID, ""),
		ClientSecret: repl.ReplaceKnown(c.ClientSecret, ""), RedirectURL: repl.ReplaceKnown(c.RedirectURL, ""),
		Scopes: c.Scopes, SessionTTL: time.Duration(c.SessionTTL), Identify: identify,
		// Behind an upstream auth layer the console takes the identity
		// from each request, unless an OpenID client is configured.
		RequestIdentity: h.Identity.Placeholder != nil && c.ClientID == ""}
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
		if repl, ok := r.Context().Value(caddy.ReplacerCtxKey).(*caddy.Replacer); ok {
			repl.Set("http.approval.policy", policy)
			if rec != nil {
				repl.Set("http.approval.status", string(rec.Status))
				if rec.ID != "" {
					repl.Set("http.approval.id", rec.ID)
				}
			}
		}
		// An event nobody subscribed to is not built (a decision is
		// emitted on every judged call).
		if events == nil || !events.ShouldEmit(name) {
			return
		}
		data := map[string]any{"policy": policy}
		if rec != nil {
			data["id"], data["status"], data["resource"] = rec.ID, string(rec.Status), rec.Resource
		}
		events.Emit(ctx, name, data)
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
