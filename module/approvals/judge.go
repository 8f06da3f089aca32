package approvals

import (
	"bytes"
	"io"
	"net/http"

	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
)

// Judging a call: reading it as the backend will (package inspect),
// asking the policy, and letting it through, refusing it or parking it.

// decided are the records an allow or a deny is annotated with (read only).
var decided = map[string]*record.Record{policy.Allow: {Status: record.Status(policy.Allow)}, policy.Deny: {Status: record.Status(policy.Deny)}}

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
		s.annotate(r, "approval_decided", d.Policy, decided[d.Action])
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
