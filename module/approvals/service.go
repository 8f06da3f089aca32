// Package approvals is the core of the gateway: it judges protected calls
// (identity, policy), parks the ones that need approval, serves the approval
// API and replays completed requests through the next handler. It knows
// nothing of Caddy: the handler in the parent package is a thin adapter.
package approvals

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/approval-gateway/gateway/module/attest"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultPrefix           = "/.approvals"
	DefaultMaxBody          = 1 << 20
	DefaultExpiry           = 720 * time.Hour
	DefaultMaxJustification = 2000
	DefaultExcerpt          = 4096
	DefaultMaxPending       = 100
	DefaultClaimTimeout     = 10 * time.Minute
	DefaultAuditRetention   = 8760 * time.Hour
)

// safeMethods are never judged: they pass untouched. With no methods
// configured, every other method is judged (WebDAV's, PURGE, a
// framework's own), so no method a backend may act on passes unjudged.
var safeMethods = map[string]bool{http.MethodGet: true, http.MethodHead: true, http.MethodOptions: true, http.MethodTrace: true}

// Metrics is told of the flow's decisions and of each request change
// (package metrics counts them for Prometheus).
type Metrics interface {
	// Decision counts a policy decision on a judged call.
	Decision(action, policy string)
	// Recorded counts a change of rec whose new history events start at
	// seen.
	Recorded(rec *record.Record, seen int)
	// Delivered counts a webhook delivery attempt.
	Delivered(target string, ok bool)
}

// noMetrics counts nothing.
type noMetrics struct{}

func (noMetrics) Decision(string, string)          {}
func (noMetrics) Recorded(*record.Record, int)     {}
func (noMetrics) Delivered(target string, ok bool) {}

// Next is the rest of the handler chain (the reverse proxy): where allowed
// calls and replays go.
type Next func(w http.ResponseWriter, r *http.Request) error

// Authenticator turns a request into an identity.
type Authenticator interface {
	Authenticate(r *http.Request) (*identity.Identity, error)
}

// Deps are what a Service is built from.
type Deps struct {
	Store    *store.Store
	Identity Authenticator
	// Policies are the access policies, kept current from files and the
	// store.
	Policies *policy.Reloader
	// Metrics, when set, are told of decisions and request changes.
	Metrics Metrics
	// Annotate, when set, is told of each decision and each request change
	// made in a request (rec is nil for allow and deny): the Caddy handler
	// sets placeholders for the access log and emits Caddy events.
	Annotate func(r *http.Request, event string, policy string, rec *record.Record)
	// Sealer, when set, seals the credentials of auto-complete requests at
	// park and opens them only for the replay (replay_credentials sealed).
	Sealer *Sealer
	// ClientIP returns the client address of a request. Default: the host
	// of RemoteAddr.
	ClientIP func(*http.Request) string
	// Clock returns the current time. Default time.Now.
	Clock  func() time.Time
	Logger *zap.Logger
}

// Settings are what a Service reads; a zero value takes its default.
type Settings struct {
	// Methods are judged; others pass untouched. Default: every method but
	// GET, HEAD, OPTIONS and TRACE.
	Methods []string
	// MaxBody is the largest body of a judged call that a policy reads or
	// that is parked, as sent and decoded. Default 1 MiB.
	MaxBody int64
	// JudgeMethodOverride has policies judge the method that an override
	// header or _method field asks for, and stores and replays the call
	// with it; by default such calls are refused (400 method_override).
	JudgeMethodOverride bool
	// JudgeAmbiguousPaths has policies judge paths with dot segments,
	// encoded slashes, backslashes or semicolons (normalized, beside the
	// raw path); by default they are refused (400 ambiguous_path).
	JudgeAmbiguousPaths bool
	// Prefix is where the approval API lives. Default DefaultPrefix.
	Prefix string
	// AdminGroups may list every request.
	AdminGroups []string
	// PolicyApprovers approve runtime policy changes (one from each
	// group). Default: AdminGroups.
	PolicyApprovers []string
	// ApprovalExpiry is the time to reach the quorum; CompletionExpiry the
	// time from approval to completion. Default 720h each.
	ApprovalExpiry   time.Duration
	CompletionExpiry time.Duration
	// MaxJustification is the longest justification, in characters.
	MaxJustification int
	// RequireApprovalNotes refuses approvals without notes.
	RequireApprovalNotes bool
	// ResultExcerpt is how much of the backend's answer the record keeps.
	ResultExcerpt int
	// MaxPendingPerIdentity caps each requester's pending requests; past it
	// a park is 429. Default 100; negative means no cap.
	MaxPendingPerIdentity int
	// AutoComplete replays requests in the approval that meets the quorum,
	// unless the decision says otherwise. Default: the requester completes.
	AutoComplete bool
	// ClaimTimeout is how long a replay may stay claimed (completing)
	// before it is failed with an unknown outcome. Default 10m.
	ClaimTimeout time.Duration
	// Retention is how long terminal requests are kept; AuditRetention how
	// long audit events are. Defaults 720h and 8760h.
	Retention      time.Duration
	AuditRetention time.Duration
	// CheckpointInterval is how often the elected gateway signs the audit
	// chain's head. Default 1h.
	CheckpointInterval time.Duration
	// SweepInterval is how often the elected sweeper runs. Default 1m.
	SweepInterval time.Duration
	// ReminderLead is how long before a request expires the sweeper raises
	// an expiring event. Default 24h; negative: no reminders.
	ReminderLead time.Duration
	// CaseSensitiveSubjects keeps case apart when refusals (self-approval,
	// one approval per person) compare subjects by subject.Key; grants
	// always compare them exactly. The store must be built with the same
	// setting.
	CaseSensitiveSubjects bool
	// Attestation configures the attestation every replay carries.
	Attestation AttestationSettings
	// Site names the requests this service parks; another site's are
	// absent to it (404, not listed). Default DefaultSite. The store must
	// be the site's own key space (store.SitePrefix).
	Site string
}

// DefaultSite is the site of a gateway that names none, and of records
// from before sites were.
const DefaultSite = "default"

// validSite is what a site name may be: it is a segment of store keys.
var validSite = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// ValidateSite checks a site name.
func ValidateSite(name string) error {
	if !validSite.MatchString(name) {
		return fmt.Errorf("site %q must be 1 to 63 letters, digits, '.', '_' or '-', starting with a letter or digit", name)
	}
	return nil
}

// Service is the request flow. It holds no request state: all of it is
// in the store.
type Service struct {
	// Settings are the service's settings, defaults filled in.
	Settings

	store    *store.Store
	ident    Authenticator
	policies *policy.Reloader
	metrics  Metrics
	annotate func(r *http.Request, event string, policy string, rec *record.Record)
	sealer   *Sealer
	clientIP func(*http.Request) string
	clock    func() time.Time
	log      *zap.Logger

	api     string          // Prefix + "/api/v1"
	methods map[string]bool // nil: every method but the safe ones
	inspect inspect.Options
	pages   Pages          // the console, when on
	keys    *keyring       // the attestation keys
	mux     *http.ServeMux // the API's routes
	doc     openAPIDoc     // the API's OpenAPI document, with this prefix
	// runtimeReady is set once the runtime policies were read from the
	// store; until then judged calls answer 503. runtimeRev is the store
	// revision of the runtime policies in force (under runtimeMu).
	runtimeReady atomic.Bool
	runtimeMu    sync.Mutex
	runtimeRev   int64
}

// New checks its arguments, fills in defaults and returns a Service.
func New(d Deps, o Settings) (*Service, error) {
	if d.Store == nil || d.Identity == nil || d.Policies == nil {
		return nil, errors.New("approvals: store, identity and policy are required")
	}
	var methods map[string]bool
	for _, m := range o.Methods {
		m = strings.ToUpper(m)
		if safeMethods[m] {
			return nil, fmt.Errorf("methods: %s is a safe method and is never judged", m)
		}
		if methods == nil {
			methods = map[string]bool{}
		}
		methods[m] = true
	}
	defaultTo(&o.MaxBody, DefaultMaxBody)
	if o.Prefix == "" {
		o.Prefix = DefaultPrefix
	}
	if !strings.HasPrefix(o.Prefix, "/") || strings.HasSuffix(o.Prefix, "/") {
		return nil, fmt.Errorf("api_prefix %q must start with / and not end with /", o.Prefix)
	}
	defaultTo(&o.ApprovalExpiry, DefaultExpiry)
	defaultTo(&o.CompletionExpiry, DefaultExpiry)
	defaultTo(&o.MaxJustification, DefaultMaxJustification)
	defaultTo(&o.ResultExcerpt, DefaultExcerpt)
	if o.MaxPendingPerIdentity == 0 {
		o.MaxPendingPerIdentity = DefaultMaxPending
	}
	defaultTo(&o.ClaimTimeout, DefaultClaimTimeout)
	defaultTo(&o.Retention, DefaultExpiry)
	defaultTo(&o.AuditRetention, DefaultAuditRetention)
	defaultTo(&o.SweepInterval, time.Minute)
	defaultTo(&o.CheckpointInterval, DefaultCheckpointInterval)
	if o.ReminderLead == 0 {
		o.ReminderLead = 24 * time.Hour
	}
	if len(o.PolicyApprovers) == 0 {
		o.PolicyApprovers = o.AdminGroups
	}
	if o.Site == "" {
		o.Site = DefaultSite
	}
	if err := ValidateSite(o.Site); err != nil {
		return nil, err
	}
	if o.Attestation.Issuer == "" {
		o.Attestation.Issuer = attest.DefaultIssuer
	}
	defaultTo(&o.Attestation.Refresh, 30*time.Second)
	defaultTo(&o.Attestation.Publish, 2*time.Minute)
	if o.Attestation.Rotate < 0 {
		return nil, fmt.Errorf("attestation rotate: %v is negative", o.Attestation.Rotate)
	}
	if o.Attestation.Rotate > 0 && o.Attestation.Rotate <= o.Attestation.Publish+attest.Lifetime+attest.Skew {
		return nil, fmt.Errorf("attestation rotate: %v is too short: a key is published %v before it signs and its attestations are valid %v",
			o.Attestation.Rotate, o.Attestation.Publish, attest.Lifetime)
	}
	s := &Service{Settings: o, store: d.Store, ident: d.Identity, policies: d.Policies, metrics: d.Metrics,
		annotate: d.Annotate, sealer: d.Sealer, clientIP: d.ClientIP, clock: d.Clock, log: d.Logger,
		api: o.Prefix + "/api/v1", methods: methods,
		inspect: inspect.Options{MaxBody: o.MaxBody, JudgeMethodOverride: o.JudgeMethodOverride, JudgeAmbiguousPaths: o.JudgeAmbiguousPaths}}
	s.keys = &keyring{s: s}
	doc, err := newOpenAPIDoc(o.Prefix)
	if err != nil {
		return nil, err
	}
	s.doc, s.mux = doc, s.routes()
	if s.metrics == nil {
		s.metrics = noMetrics{}
	}
	if s.annotate == nil {
		s.annotate = func(*http.Request, string, string, *record.Record) {}
	}
	if s.clientIP == nil {
		s.clientIP = remoteHost
	}
	if s.clock == nil {
		s.clock = time.Now
	}
	if s.log == nil {
		s.log = zap.NewNop()
	}
	return s, nil
}

// Ready reports whether the runtime policies are loaded: until then
// judged calls answer 503.
func (s *Service) Ready() bool { return s.runtimeReady.Load() }

// defaultTo sets *v to def when it is not positive.
func defaultTo[T int | int64 | time.Duration](v *T, def T) {
	if *v <= 0 {
		*v = def
	}
}

// ServeHTTP routes a request: the approval API, a judged call, or straight
// to next.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request, next Next) error {
	stripTrustHeaders(r.Header)
	if p := r.URL.Path; p == s.Prefix || strings.HasPrefix(p, s.Prefix+"/") {
		if !canonicalPath(r.URL) {
			// Another spelling of a route (dot segments, doubled slashes,
			// escapes) is no route: never a redirect to one.
			writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such API call or page"))
			return nil
		}
		if s.pages != nil && p != s.Prefix+"/healthz" && p != s.Prefix+jwksPath && p != s.api && !strings.HasPrefix(p, s.api+"/") {
			s.pages.ServeHTTP(w, r, next)
			return nil
		}
		s.serveAPI(w, r, next)
		return nil
	}
	m, err := inspect.ReadMethod(r, s.inspect)
	if err != nil {
		writeError(w, err)
		return nil
	}
	if !s.judged(m.Effective) && !s.judged(m.Wire) {
		// Not judged, but a body on a read may still ask a backend for
		// another method (method-override reads req.body on any method).
		if hasBody(r) && inspect.MayOverride(r.Header) {
			if err := s.checkReadBody(r, m); err != nil {
				writeError(w, err)
				return nil
			}
		}
		return next(w, r)
	}
	return s.judge(w, r, m, next)
}

// authenticate verifies the caller's token.
func (s *Service) authenticate(r *http.Request) (*identity.Identity, error) {
	who, err := s.ident.Authenticate(r)
	if err != nil {
		e := fail(http.StatusUnauthorized, CodeUnauthenticated, "a valid bearer token is required")
		if errors.Is(err, identity.ErrNoToken) {
			return nil, e.with("no_token", true)
		}
		s.log.Info("authentication failed", zap.Error(err), zap.String("client_ip", s.clientIP(r)))
		return nil, e
	}
	s.store.SeenMember(who.Subject, who.Groups, s.clock())
	return who, nil
}

// principal is who as a record sees a caller, with the configured rule for
// comparing subjects.
func (s *Service) principal(who *identity.Identity) record.Principal {
	return record.Principal{Subject: who.Subject, Groups: who.Groups, CaseSensitive: s.CaseSensitiveSubjects}
}

// ownSite reports whether rec was parked by this service's site (records
// from before sites were belong to the default site).
func (s *Service) ownSite(rec *record.Record) bool {
	site := rec.Site
	if site == "" {
		site = DefaultSite
	}
	return site == s.Site
}

func (s *Service) isAdmin(who *identity.Identity) bool {
	for _, g := range s.AdminGroups {
		if slices.Contains(who.Groups, g) {
			return true
		}
	}
	return false
}

// audit logs one lifecycle event: who, what, which request; never bodies
// or credentials.
func (s *Service) audit(rec *record.Record, actor, action, notes string, r *http.Request) {
	s.log.Info("approval event",
		zap.String("event", action), zap.String("request_id", rec.ID), zap.String("actor", actor),
		zap.String("requester", rec.Requester.Subject), zap.String("policy", rec.Policy),
		zap.String("resource", rec.Resource), zap.String("status", string(rec.Status)),
		zap.String("method", rec.Operation.Method), zap.String("path", rec.Operation.Path),
		zap.Bool("notes", notes != ""), zap.String("client_ip", s.clientIP(r)))
}

func remoteHost(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}
