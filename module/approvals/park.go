package approvals

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// Parking a call that needs approval, and the two kinds of park that let
// it through: a dry run and break-glass.

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
		Method: c.method.Effective, Path: c.target.Path, RawPath: c.target.RawPath, RawQuery: c.target.RawQuery,
		ForceQuery: c.target.ForceQuery, Host: r.Host,
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
		Justification: just, Policy: c.d.Policy, Reason: c.d.Reason, Resource: c.d.Resource, Site: s.Site,
		Operation: op, PayloadSHA256: record.PayloadHash(op, c.body),
		Approvers: record.NewRequirements(reqs),
		CreatedAt: c.now, UpdatedAt: c.now, ExpiresAt: c.now.Add(expiry),
		CompletionExpiry: record.Duration(s.CompletionExpiry),
		AutoComplete:     c.d.Complete == "auto" || (c.d.Complete == "" && s.AutoComplete),
		History:          []record.Event{{At: c.now, Actor: c.who.Subject, Action: "parked", To: record.NeedsApproval, Notes: just}},
	}
	if a := c.d.ApproverAuth; a != nil {
		rec.ApproverAuth = &record.AuthRequirement{MaxAge: record.Duration(a.MaxAge), ACRValues: a.ACRValues, AMR: a.AMR}
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
	rec.Warnings = s.quorumWarnings(r.Context(), rec)
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
