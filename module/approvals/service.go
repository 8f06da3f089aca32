// Package approvals is the core of the gateway: it judges protected calls
// (identity, policy), parks the ones that need approval, serves the approval
// API and replays completed requests through the next handler. It knows
// nothing of Caddy: the handler in the parent package is a thin adapter.
package approvals

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

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
	// SweepInterval is how often the elected sweeper runs. Default 1m.
	SweepInterval time.Duration
	// ReminderLead is how long before a request expires the sweeper raises
	// an expiring event. Default 24h; negative: no reminders.
	ReminderLead time.Duration
	// CaseSensitiveSubjects compares subjects exactly for self-approval,
	// "one approval per identity" and who the requester is; by default
	// they are compared by Unicode case folding (record.SubjectKey). The
	// store must be built with the same setting.
	CaseSensitiveSubjects bool
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
	pages   Pages // the console, when on
	// runtimeReady is set once the runtime policies were read from the
	// store; until then judged calls answer 503.
	runtimeReady atomic.Bool
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
	if o.ReminderLead == 0 {
		o.ReminderLead = 24 * time.Hour
	}
	if len(o.PolicyApprovers) == 0 {
		o.PolicyApprovers = o.AdminGroups
	}
	s := &Service{Settings: o, store: d.Store, ident: d.Identity, policies: d.Policies, metrics: d.Metrics,
		annotate: d.Annotate, sealer: d.Sealer, clientIP: d.ClientIP, clock: d.Clock, log: d.Logger,
		api: o.Prefix + "/api/v1", methods: methods,
		inspect: inspect.Options{MaxBody: o.MaxBody, JudgeMethodOverride: o.JudgeMethodOverride, JudgeAmbiguousPaths: o.JudgeAmbiguousPaths}}
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
		if p == s.Prefix+"/healthz" {
			s.health(w, r)
			return nil
		}
		if s.pages != nil && p != s.api && !strings.HasPrefix(p, s.api+"/") {
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

// hasBody reports whether a request carries a body.
func hasBody(r *http.Request) bool {
	return r.ContentLength != 0 && r.Body != nil && r.Body != http.NoBody
}

// checkReadBody reads the body of a call that is not judged, bounded, and
// refuses it if it asks for another method: no override turns a read into
// a change unjudged.
func (s *Service) checkReadBody(r *http.Request, m inspect.Method) error {
	body, err := s.readBody(r)
	if err != nil {
		return err
	}
	_, err = body.Override(m, s.inspect)
	return err
}

// judged reports whether calls with method m are judged.
func (s *Service) judged(m string) bool {
	if s.methods == nil {
		return !safeMethods[m]
	}
	return s.methods[m]
}

// judge authenticates a protected call, asks the policy, and lets it
// through, refuses it or parks it. The policy sees the call as the backend
// will execute it (package inspect); the bytes forwarded, stored and
// replayed are the ones sent.
func (s *Service) judge(w http.ResponseWriter, r *http.Request, m inspect.Method, next Next) error {
	tgt, err := inspect.ReadTarget(r.URL, s.inspect)
	if err != nil {
		writeError(w, err)
		return nil
	}
	who, err := s.authenticate(r)
	if err != nil {
		writeError(w, err)
		return nil
	}
	if !s.runtimeReady.Load() {
		writeError(w, fail(http.StatusServiceUnavailable, CodeStoreUnavailable, "the runtime policies are not loaded yet; try again shortly"))
		return nil
	}
	// The policy in force now decides; the body is read only if it reads
	// bodies, or if the body could hold a _method field.
	pol := s.policies.Engine().Current()
	var body *inspect.Body
	if pol.Use.Body || (hasBody(r) && inspect.MayOverride(r.Header)) {
		if body, err = s.readBody(r); err == nil {
			m, err = body.Override(m, s.inspect)
		}
		if err != nil {
			writeError(w, err)
			return nil
		}
	}
	now := s.clock()
	call := policy.Call{Method: m.Effective, WireMethod: m.Wire, Path: tgt.Path, RawPath: tgt.RawPath, Host: r.Host,
		Query: tgt.Query, Header: r.Header, ContentType: inspect.MediaType(r.Header), RemoteIP: s.clientIP(r)}
	if body != nil {
		call.Body, call.BodySize, call.BodySHA256 = body.Value, len(body.Raw), body.SHA256
	}
	d, err := pol.DecideCall(r.Context(), call, policy.Caller{Subject: who.Subject, Groups: who.Groups, Claims: who.Claims}, now)
	if err != nil {
		s.log.Error("policy gave no valid decision; denying", zap.Error(err),
			zap.String("subject", who.Subject), zap.String("method", m.Effective), zap.String("path", tgt.Path))
	}
	s.metrics.Decision(d.Action, d.Policy)
	if d.Action != policy.RequireApproval {
		s.annotate(r, "approval_decided", d.Policy, &record.Record{Status: record.Status(d.Action)})
	}
	s.log.Info("decision", zap.String("action", d.Action), zap.String("policy", d.Policy),
		zap.String("subject", who.Subject), zap.String("method", m.Effective), zap.String("path", tgt.Path),
		zap.String("resource", d.Resource), zap.String("client_ip", call.RemoteIP))
	switch d.Action {
	case policy.Allow:
		return next(w, r)
	case policy.RequireApproval:
		if d.DryRun {
			s.dryRun(r, who, d, m, tgt, now)
			return next(w, r)
		}
		// A parked or break-glass call is stored whole: its body is read
		// (bounded) and must be one approvers can be shown.
		if body == nil {
			if body, err = s.readBody(r); err != nil {
				writeError(w, err)
				return nil
			}
		}
		c := parked{who: who, d: d, method: m, target: tgt, body: body.Raw, now: now}
		if d.BreakGlass {
			return s.breakGlass(w, r, c, next)
		}
		rec, err := s.park(r, c)
		if err != nil {
			writeError(w, err)
			return nil
		}
		w.Header().Set("Location", s.api+"/requests/"+rec.ID)
		writeJSON(w, http.StatusAccepted, rec)
		return nil
	default:
		reason := d.Reason
		if reason == "" {
			reason = "the access policy denies this call"
		}
		writeError(w, fail(http.StatusForbidden, CodeDenied, reason).with("policy", d.Policy))
		return nil
	}
}

// readBody reads a judged call's body, bounded by MaxBody, and leaves the
// same bytes in r for the next handler.
func (s *Service) readBody(r *http.Request) (*inspect.Body, error) {
	if r.ContentLength > s.MaxBody {
		return nil, inspect.TooLarge(s.MaxBody)
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, s.MaxBody+1))
	if err != nil {
		return nil, fail(http.StatusBadRequest, CodeBadRequest, "reading the request body failed")
	}
	if int64(len(raw)) > s.MaxBody {
		return nil, inspect.TooLarge(s.MaxBody)
	}
	r.Body = io.NopCloser(bytes.NewReader(raw))
	r.ContentLength = int64(len(raw))
	return inspect.ReadBody(raw, r.Header, s.inspect)
}

// parked is a judged call that needs approval: who asked, what the policy
// decided, and the call as it will be replayed.
type parked struct {
	who    *identity.Identity
	d      policy.Decision
	method inspect.Method
	target inspect.Target
	body   []byte
	now    time.Time
	// internal names a target inside the gateway (a runtime policy
	// change), or is empty for the backend.
	internal string
}

// JustificationHeader carries the requester's business justification.
const JustificationHeader = "Approval-Justification"

// justification reads and checks the Approval-Justification header.
func (s *Service) justification(r *http.Request, d policy.Decision) (string, error) {
	just := strings.TrimSpace(r.Header.Get(JustificationHeader))
	if just == "" {
		verb := "needs approval"
		if d.BreakGlass {
			verb = "is a break-glass call"
		}
		return "", fail(http.StatusPreconditionRequired, CodeJustificationRequired,
			"this change "+verb+": resend it with an "+JustificationHeader+" header saying why").with("policy", d.Policy)
	}
	if !utf8.ValidString(just) {
		return "", fail(http.StatusBadRequest, CodeBadRequest, "the justification is not UTF-8 text")
	}
	if n := len([]rune(just)); n > s.MaxJustification {
		return "", fail(http.StatusBadRequest, CodeJustificationTooLong,
			fmt.Sprintf("the justification has %d characters; at most %d are allowed", n, s.MaxJustification))
	}
	return just, nil
}

// newRecord builds the record of a judged call that needs approval: the
// call exactly as sent (method, raw path and query, headers but
// credentials, body), to be replayed byte for byte.
func (s *Service) newRecord(r *http.Request, c parked, just string) (*record.Record, error) {
	op := record.Operation{
		Method: c.method.Effective, Path: c.target.Path, RawPath: c.target.RawPath, RawQuery: c.target.RawQuery, Host: r.Host,
		Headers: storableHeaders(r.Header, s.sealer), BodySize: len(c.body), Internal: c.internal,
	}
	if c.method.Wire != c.method.Effective {
		op.WireMethod = c.method.Wire
	}
	reqs := make([]record.Requirement, len(c.d.Approvers))
	for i, a := range c.d.Approvers {
		reqs[i] = record.Requirement{Group: a.Group, Required: a.Required}
	}
	expiry := s.ApprovalExpiry
	if c.d.ExpiresIn > 0 {
		expiry = c.d.ExpiresIn
	}
	id, err := store.NewID(c.now)
	if err != nil {
		return nil, err
	}
	rec := &record.Record{
		ID: id, Status: record.NeedsApproval,
		Requester:     record.Principal{Subject: c.who.Subject, Groups: slices.Clone(c.who.Groups)},
		Justification: just, Policy: c.d.Policy, Reason: c.d.Reason, Resource: c.d.Resource,
		Operation: op, PayloadSHA256: record.PayloadHash(op, c.body),
		Approvers: record.NewRequirements(reqs),
		CreatedAt: c.now, UpdatedAt: c.now, ExpiresAt: c.now.Add(expiry),
		CompletionExpiry: record.Duration(s.CompletionExpiry),
		AutoComplete:     c.d.Complete == "auto" || (c.d.Complete == "" && s.AutoComplete),
		History:          []record.Event{{At: c.now, Actor: c.who.Subject, Action: "parked", To: record.NeedsApproval, Notes: just}},
	}
	return rec, nil
}

// park stores a call that needs approval.
func (s *Service) park(r *http.Request, c parked) (*record.Record, error) {
	just, err := s.justification(r, c.d)
	if err != nil {
		return nil, err
	}
	rec, err := s.newRecord(r, c, just)
	if err != nil {
		return nil, err
	}
	var sealedCreds []byte
	if s.sealer != nil && rec.AutoComplete {
		if sealedCreds, err = s.sealer.Seal(rec.ID, r.Header); err != nil {
			return nil, err
		}
	}
	if err := s.store.Create(r.Context(), rec, c.body, store.CreateOptions{MaxPending: max(0, s.MaxPendingPerIdentity),
		ClientIP: s.clientIP(r), Sealed: sealedCreds}); err != nil {
		s.log.Warn("park refused", zap.String("subject", c.who.Subject), zap.String("resource", c.d.Resource), zap.Error(err))
		return nil, err
	}
	s.metrics.Recorded(rec, 0)
	s.annotate(r, "approval_parked", rec.Policy, rec)
	s.audit(rec, c.who.Subject, "parked", "", r)
	return rec, nil
}

// storeMutate is Store.Mutate, counting the transitions it records.
func (s *Service) storeMutate(ctx context.Context, id, clientIP string, fn func(*record.Record) error) (*record.Record, error) {
	seen := 0
	rec, err := s.store.Mutate(ctx, id, clientIP, func(r *record.Record) error {
		seen = len(r.History)
		return fn(r)
	})
	if err == nil {
		s.metrics.Recorded(rec, seen)
	}
	return rec, err
}

// dryRun records what a dry-run decision would have asked, and lets the
// call through (the policy is being rolled out, not enforced).
func (s *Service) dryRun(r *http.Request, who *identity.Identity, d policy.Decision, m inspect.Method, tgt inspect.Target, now time.Time) {
	var groups []string
	for _, a := range d.Approvers {
		groups = append(groups, fmt.Sprintf("%d from %s", a.Required, a.Group))
	}
	notes := fmt.Sprintf("would require approval (%s): %s %s", strings.Join(groups, ", "), m.Effective, tgt.RawPath)
	s.log.Info("dry run: would require approval", zap.String("policy", d.Policy), zap.String("subject", who.Subject),
		zap.String("resource", d.Resource), zap.Strings("approvers", groups), zap.String("method", m.Effective), zap.String("path", tgt.Path))
	err := s.store.AppendAudit(r.Context(), record.AuditEvent{At: now, Actor: who.Subject, Action: "dry_run",
		Notes: notes, ClientIP: s.clientIP(r), Policy: d.Policy, Resource: d.Resource, Requester: who.Subject})
	if err != nil {
		s.log.Error("recording a dry run", zap.Error(err))
	}
}

// breakGlass lets a call through at once, recorded as a bypassed request
// with its whole audit trail. It needs a justification, and fails closed
// when the record cannot be written: no trail, no bypass.
func (s *Service) breakGlass(w http.ResponseWriter, r *http.Request, c parked, next Next) error {
	just, err := s.justification(r, c.d)
	if err != nil {
		writeError(w, err)
		return nil
	}
	rec, err := s.newRecord(r, c, just)
	if err != nil {
		writeError(w, err)
		return nil
	}
	rec.Status = record.Bypassed
	rec.ExpiresAt = c.now
	rec.History[0] = record.Event{At: c.now, Actor: c.who.Subject, Action: "bypassed", To: record.Bypassed, Notes: just}
	if err := s.store.CreateBypassed(r.Context(), rec, c.body, s.clientIP(r)); err != nil {
		writeError(w, err)
		return nil
	}
	s.metrics.Recorded(rec, 0)
	s.annotate(r, "approval_bypassed", rec.Policy, rec)
	s.log.Warn("BREAK-GLASS: call passed without approval", zap.String("request_id", rec.ID), zap.String("subject", c.who.Subject),
		zap.String("policy", c.d.Policy), zap.String("resource", c.d.Resource), zap.String("method", c.method.Effective),
		zap.String("path", c.target.Path), zap.String("client_ip", s.clientIP(r)))
	cw := &captureWriter{ResponseWriter: w, limit: s.ResultExcerpt}
	cw.Header().Set(RequestIDHeader, rec.ID)
	nerr := next(cw, r)
	res := cw.result(nerr)
	ctx, cancel := detached(r.Context())
	defer cancel()
	if _, err := s.storeMutate(ctx, rec.ID, s.clientIP(r), func(rec *record.Record) error {
		rec.NoteBypassResult(res, s.clock())
		return nil
	}); err != nil {
		s.log.Error("recording a break-glass call's answer", zap.String("request_id", rec.ID), zap.Error(err))
	}
	return nerr
}

// dropHeaders are never stored with a parked call: credentials, hop-by-hop
// headers, and what the replay sets itself.
var dropHeaders = map[string]bool{
	"Authorization": true, "Cookie": true, "Proxy-Authorization": true,
	"Connection": true, "Keep-Alive": true, "Proxy-Connection": true, "Te": true, "Trailer": true,
	"Transfer-Encoding": true, "Upgrade": true, "Content-Length": true, "Expect": true,
	"Approval-Justification": true, IdempotencyKeyHeader: true, RequestIDHeader: true, ApprovedByHeader: true, AttestationHeader: true,
}

func storableHeaders(h http.Header, sealer *Sealer) http.Header {
	out := http.Header{}
	conn := map[string]bool{}
	for _, v := range h.Values("Connection") {
		for _, f := range strings.Split(v, ",") {
			conn[http.CanonicalHeaderKey(strings.TrimSpace(f))] = true
		}
	}
	for k, vs := range h {
		ck := http.CanonicalHeaderKey(k)
		if dropHeaders[ck] || conn[ck] || (sealer != nil && slices.Contains(sealer.headers, ck)) {
			continue
		}
		out[ck] = slices.Clone(vs)
	}
	return out
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
	return who, nil
}

// principal is who as a record sees a caller, with the configured rule for
// comparing subjects.
func (s *Service) principal(who *identity.Identity) record.Principal {
	return record.Principal{Subject: who.Subject, Groups: who.Groups, CaseSensitive: s.CaseSensitiveSubjects}
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
