// Package approvalgateway is the Caddy module of the approval gateway: a
// thin HTTP handler that adapts Caddy's configuration, logger, lifecycle
// and handler chain to the core packages below it (the request flow in
// approvals, the console, the notifier).
package approvalgateway

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/console"
	"github.com/approval-gateway/gateway/module/identity"
	gwmetrics "github.com/approval-gateway/gateway/module/metrics"
	"github.com/approval-gateway/gateway/module/notify"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/caddyserver/caddy/v2"
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
	// Site names the requests this handler parks. Requests belong to
	// their site: every other site treats them as absent (404, not
	// listed), even on the same store and prefix, since each site keeps
	// its keys apart (under the prefix, then sites/<name>/): its requests,
	// runtime policies, audit chain, console sessions and attestation keys.
	// Attestations carry it as "aud" unless attestation's audience is set.
	// Default "default", whose keys are the prefix's own. Two handlers of
	// one configuration on the same store and prefix need distinct names.
	// Renaming a site leaves its requests behind, under the old name.
	Site string `json:"site,omitempty"`
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
	// CaseSensitiveSubjects keeps case apart when refusals compare
	// subjects (self-approval, one approval per person, the pending cap):
	// by default they compare by a folded key (RFC 8265's
	// UsernameCaseMapped, with case folding and white space folded), since
	// an e-mail address, UPN or user name reaches the gateway in whatever
	// case the identity provider passes on. Set it only when subjects are
	// case-sensitive opaque ids. Grants (who the requester is) always
	// compare the subject exactly as issued.
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
	// CheckpointInterval is how often the elected gateway signs the audit
	// chain's head with the attestation key. Default 1h.
	CheckpointInterval caddy.Duration `json:"checkpoint_interval,omitempty"`
	// PolicyApprovers approve runtime policy changes, one from each group.
	// Default: AdminGroups.
	PolicyApprovers []string `json:"policy_approvers,omitempty"`
	// ReplayCredentials seals the requester's Authorization (and listed
	// headers) of auto-complete requests, for their replay.
	ReplayCredentials *SealConfig `json:"replay_credentials,omitempty"`
	// Notify lists the webhook targets of the events.
	Notify []NotifyConfig `json:"notify,omitempty"`
	// NotifyRetry is how failed deliveries are retried.
	NotifyRetry *NotifyRetry `json:"notify_retry,omitempty"`
	// ReminderLead is how long before expiry an expiring event is raised.
	// Default 24h.
	ReminderLead caddy.Duration `json:"reminder_lead,omitempty"`
	// PublicURL is the gateway's base URL in notification links, such as
	// https://admin.example.com.
	PublicURL string `json:"public_url,omitempty"`
	// Attestation configures the attestation every replay carries.
	Attestation *AttestationConfig `json:"attestation,omitempty"`
	// Console turns on the web console with OpenID Connect login.
	Console *ConsoleConfig `json:"console,omitempty"`
	// WatchPolicies reloads the policy directory when its files change.
	// Default true; set false to reload only with the configuration.
	WatchPolicies *bool `json:"watch_policies,omitempty"`

	svc      *approvals.Service
	stop     context.CancelFunc // ends the goroutines, which wait on done
	done     *sync.WaitGroup
	verifier *identity.Verifier
	storeKey string
	release  func() // gives up the site's key space (sites.go)
	logger   *zap.Logger
}

// CaddyModule returns the Caddy module information.
func (Handler) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.approval_gateway",
		New: func() caddy.Module { return new(Handler) },
	}
}

// Provision builds the parts and starts the gateway's goroutines (policy
// watches, the elected sweeper and notifier), which live as long as the
// configuration's context. It does not wait for etcd: until the runtime
// policies are read, judged calls answer 503.
func (h *Handler) Provision(ctx caddy.Context) error {
	h.logger = ctx.Logger()
	if err := h.Validate(); err != nil {
		return err
	}
	repl := caddy.NewReplacer()
	auth, identify, err := h.authenticator(repl)
	if err != nil {
		return err
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
	if h.release, err = claimSite(ctx, h.storeKey, st.Prefix(), h.site()); err != nil {
		return err
	}
	if metrics, err = newMetrics(ctx, st); err != nil {
		return err
	}
	sealer, err := h.sealer(repl)
	if err != nil {
		return err
	}
	h.svc, err = approvals.New(approvals.Deps{Store: st, Identity: auth, Policies: pol, Metrics: metrics, Annotate: h.annotate(ctx),
		Sealer: sealer, ClientIP: clientIP, Logger: h.logger}, h.settings())
	if err != nil {
		return err
	}
	if h.Console != nil {
		c, err := console.New(console.Deps{Flow: h.svc, Store: st, Identity: auth, Prefix: h.svc.Prefix, Logger: h.logger.Named("console")},
			h.consoleOptions(repl, identify))
		if err != nil {
			return err
		}
		h.svc.SetPages(c)
	}
	notifier := notify.New(notify.Options{Store: st, Targets: h.webhooks(repl), Source: h.eventSource(),
		Links: strings.TrimSuffix(repl.ReplaceKnown(h.PublicURL, ""), "/") + h.svc.Prefix, Backoff: h.backoff(),
		Metrics: metrics, Logger: h.logger.Named("notify")})

	runCtx, stop := context.WithCancel(ctx)
	h.stop, h.done = stop, new(sync.WaitGroup)
	h.run(runCtx, h.svc.RunPolicyWatch)
	h.run(runCtx, h.svc.RunWatches)
	h.run(runCtx, h.svc.RunSweeper)
	h.run(runCtx, h.svc.RunCheckpoints)
	h.run(runCtx, notifier.Run)
	if h.WatchPolicies == nil || *h.WatchPolicies {
		h.run(runCtx, func(ctx context.Context) {
			if err := pol.Watch(ctx, 250*time.Millisecond); err != nil {
				h.logger.Warn("watching the policy directory", zap.Error(err))
			}
		})
	}
	h.logger.Info("approval gateway provisioned", zap.String("site", h.site()), zap.String("key_prefix", st.Prefix()),
		zap.Strings("policy_files", pol.Status().Files))
	return nil
}

// run runs fn in a goroutine that Cleanup waits for.
func (h *Handler) run(ctx context.Context, fn func(context.Context)) {
	h.done.Add(1)
	go func() {
		defer h.done.Done()
		fn(ctx)
	}()
}

// Validate checks the configuration: the same checks for a JSON
// configuration as for a Caddyfile, whose parser runs each block's as it
// reads it.
func (h *Handler) Validate() error {
	if h.Identity == nil {
		return fmt.Errorf("identity: exactly one of identity jwt or identity placeholder is required")
	}
	if err := h.Identity.validate(); err != nil {
		return err
	}
	if h.Policies == "" {
		return fmt.Errorf("policies: a policy directory is required")
	}
	if h.Site != "" {
		if err := approvals.ValidateSite(h.Site); err != nil {
			return err
		}
	}
	if h.Store != nil {
		if err := h.Store.validate(); err != nil {
			return err
		}
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
	if h.MaxJustification < 0 {
		return fmt.Errorf("max_justification: %d is not a positive number", h.MaxJustification)
	}
	if h.MaxPendingPerIdentity < -1 {
		return fmt.Errorf("max_pending_per_identity: %d is not a positive number (or -1 for no cap)", h.MaxPendingPerIdentity)
	}
	if h.Attestation != nil {
		if err := h.Attestation.validate(); err != nil {
			return err
		}
	}
	if h.ReplayCredentials != nil {
		if err := h.ReplayCredentials.validate(); err != nil {
			return err
		}
	}
	for i := range h.Notify {
		if err := h.Notify[i].validate(); err != nil {
			return err
		}
	}
	if h.NotifyRetry != nil {
		return h.NotifyRetry.validate()
	}
	return nil
}

// Cleanup stops the gateway's goroutines and waits for them, releases the
// store (shared with other configurations through the pool) and stops
// JWKS refreshes. It works after a failed Provision.
func (h *Handler) Cleanup() error {
	if h.stop != nil {
		h.stop()
		h.done.Wait()
		h.stop = nil
	}
	if h.verifier != nil {
		h.verifier.Close()
	}
	if h.release != nil {
		h.release()
		h.release = nil
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

// Interface guards
var (
	_ caddy.Provisioner           = (*Handler)(nil)
	_ caddy.Validator             = (*Handler)(nil)
	_ caddy.CleanerUpper          = (*Handler)(nil)
	_ caddyhttp.MiddlewareHandler = (*Handler)(nil)
)
