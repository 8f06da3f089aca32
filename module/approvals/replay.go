package approvals

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"github.com/dunglas/httpsfv"
	"go.uber.org/zap"
)

// Headers the replay adds.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	RequestIDHeader      = "Approval-Request-Id"
	ApprovedByHeader     = "Approval-Approved-By"
	AttestationHeader    = "Approval-Attestation"
)

// trustHeaders are set by the gateway on a replay and say to the backend
// that a call was approved, by whom, and under which request id. A client
// never sets them: they are removed from every call the gateway forwards,
// so only a replay carries them.
var trustHeaders = []string{IdempotencyKeyHeader, RequestIDHeader, ApprovedByHeader, AttestationHeader}

// stripTrustHeaders removes the client's own copies of the trust headers,
// also under names spelt with underscores, which CGI, PHP, WSGI and
// nginx's underscores_in_headers hand to the backend as the same variable
// (HTTP_APPROVAL_APPROVED_BY).
func stripTrustHeaders(h http.Header) {
	for _, k := range trustHeaders {
		delete(h, k)
	}
	for k := range h {
		if strings.IndexByte(k, '_') >= 0 && slices.Contains(trustHeaders, http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))) {
			delete(h, k)
		}
	}
}

// complete claims an approved request for its requester and replays it:
// at most once, since only one claim can move it from approved to
// completing. The backend's answer goes to the caller as is.
func (s *Service) complete(w http.ResponseWriter, r *http.Request, who *identity.Identity, id string, next Next) {
	cw := &captureWriter{ResponseWriter: w, limit: s.ResultExcerpt}
	final, err := s.claimAndReplay(cw, r, who, id, r.Header.Get("Authorization"), next)
	if cw.status != 0 {
		return // the backend's answer is the caller's answer
	}
	// Approval-Request-Id marks the backend's own answer (the CLI reads it
	// so): the gateway's refusal does not carry it.
	w.Header().Del(RequestIDHeader)
	if err != nil && final == nil {
		writeError(w, err)
		return
	}
	e := fail(http.StatusBadGateway, CodeReplayFailed, "the backend could not be reached; the request is now failed and will not be replayed")
	if final != nil {
		e = e.with("request", final)
	}
	writeError(w, e)
}

// claimAndReplay claims request id for its requester, who, and replays it
// through cw with auth as its Authorization: the one path of completion,
// from the API and from the console.
func (s *Service) claimAndReplay(cw *captureWriter, r *http.Request, who *identity.Identity, id, auth string, next Next) (*record.Record, error) {
	if _, err := s.keys.current(r.Context()); err != nil {
		// Nothing is claimed that could not be attested.
		return nil, err
	}
	p := s.principal(who)
	var c store.Claimed
	rec, err := s.mutateBy(r, who, func(rec *record.Record) error { return rec.Claim(p, s.clock()) },
		func(fn func(*record.Record) error) (*record.Record, error) {
			seen := 0
			rec, claimed, err := s.store.Claim(r.Context(), id, s.clientIP(r), func(x *record.Record) error {
				seen = len(x.History)
				return fn(x)
			})
			if err == nil {
				s.metrics.Recorded(rec, seen)
				c = claimed
			}
			return rec, err
		})
	if err != nil {
		return nil, err
	}
	s.audit(rec, who.Subject, "completing", "", r)
	// Before the replay: the backend's answer may go straight to the caller.
	s.annotate(r, "approval_completing", rec.Policy, rec)
	return s.replay(cw, r, rec, c, auth, next)
}

// replay sends a claimed request (c: what its claim read) to next through
// cw and records the outcome: completed with the backend's answer, or
// failed when none came. auth is the Authorization to send: the complete
// call's own, or none.
func (s *Service) replay(cw *captureWriter, r *http.Request, rec *record.Record, c store.Claimed, auth string, next Next) (*record.Record, error) {
	id, body := rec.ID, c.Body
	var creds http.Header
	if auth == "" && s.sealer != nil {
		// Auto-complete: the credentials sealed at park, opened only now.
		var err error
		if c.Sealed != nil {
			creds, err = s.sealer.Open(id, c.Sealed)
		}
		if err != nil {
			return s.finishReplay(r, rec, c.Rev, record.Result{Error: "the sealed replay credentials cannot be used: " + err.Error()}, false)
		}
	}
	cw.Header().Set(RequestIDHeader, id)
	if rec.Operation.Internal == internalPolicy {
		next = func(w http.ResponseWriter, _ *http.Request) error {
			res := s.applyPolicy(r.Context(), rec, body)
			if res.Status == 0 {
				return errors.New(res.Error)
			}
			for k, v := range res.Headers {
				w.Header()[k] = v
			}
			w.WriteHeader(res.Status)
			_, err := io.WriteString(w, res.Body)
			return err
		}
	}
	rr, err := s.replayRequest(r, rec, body, auth)
	if err != nil {
		return s.finishReplay(r, rec, c.Rev, record.Result{Error: "the stored call cannot be replayed verbatim: " + err.Error()}, false)
	}
	for k, v := range creds {
		rr.Header[k] = v
	}
	att, err := s.attest(r.Context(), rec, rr, body)
	if err != nil {
		return s.finishReplay(r, rec, c.Rev, record.Result{Error: "the replay cannot be attested: " + err.Error()}, false)
	}
	rr.Header.Set(AttestationHeader, att)
	nerr := next(cw, rr)
	res := cw.result(nerr)
	if nerr != nil && cw.status == 0 && r.Context().Err() != nil {
		// Cut while the backend had the call: it may have acted on it.
		res.Error = record.OutcomeUnknown + " (" + nerr.Error() + ")"
	}
	return s.finishReplay(r, rec, c.Rev, res, cw.status != 0)
}

// finishReplay records the replay's outcome: completed with the backend's
// answer, or failed when none came. It writes from the claimed record
// (rec at mod revision rev), without reading it again.
func (s *Service) finishReplay(r *http.Request, rec *record.Record, rev int64, res record.Result, answered bool) (*record.Record, error) {
	ctx, cancel := detached(r.Context())
	defer cancel()
	now := s.clock()
	seen := 0
	final, err := s.store.MutateFrom(ctx, rec, rev, s.clientIP(r), func(rec *record.Record) error {
		seen = len(rec.History)
		if !answered {
			if res.Error == "" {
				res.Error = "the backend gave no answer"
			}
			return rec.Fail(res, now)
		}
		return rec.Finish(res, now)
	})
	if err != nil {
		s.log.Error("recording the replay's outcome", zap.String("request_id", rec.ID), zap.Error(err))
		return nil, err
	}
	s.metrics.Recorded(final, seen)
	s.audit(final, record.SystemActor, string(final.Status), "", r)
	s.annotate(r, "approval_"+string(final.Status), final.Policy, final)
	return final, nil
}

// replayRequest builds the parked call from what was stored, and from
// nothing else: the method and raw request target exactly as they were
// sent and judged (escapes, a bare "?", an override header or _method
// field included), the stored host and headers, and the stored body framed
// by its Content-Length. It is a new request, not a copy of r (the
// complete call, the console's form, or the approval that auto-completes):
// none of r's query, headers, framing, trailers or body can reach the
// backend. Of r it keeps only its context (the handler chain's state) and
// its connection (RemoteAddr, TLS), which the proxy reports as the
// client's. auth is the Authorization it carries: the requester's current
// token, or none.
func (s *Service) replayRequest(r *http.Request, rec *record.Record, body []byte, auth string) (*http.Request, error) {
	op := rec.Operation
	u := &url.URL{Path: op.Path, RawQuery: op.RawQuery, ForceQuery: op.ForceQuery && op.RawQuery == ""}
	if op.RawPath != "" {
		p, err := url.PathUnescape(op.RawPath)
		if err != nil {
			return nil, err
		}
		u.Path, u.RawPath = p, op.RawPath
		if u.EscapedPath() != op.RawPath {
			return nil, errors.New("the stored path cannot be sent as it was received")
		}
	}
	// What parking drops is dropped again: a record from an older release
	// cannot bring framing, hop-by-hop or credential headers back.
	h := storableHeaders(op.Headers, nil)
	if auth != "" {
		h.Set("Authorization", auth)
	}
	approvers, err := approvedByField(rec.ApprovedBy())
	if err != nil {
		return nil, err
	}
	h.Set(IdempotencyKeyHeader, rec.ID)
	h.Set(RequestIDHeader, rec.ID)
	if approvers != "" {
		h.Set(ApprovedByHeader, approvers) // an empty list is no field
	}
	rr := &http.Request{
		Method: op.SentMethod(), URL: u, RequestURI: u.RequestURI(),
		Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header: h, Host: op.Host, Body: http.NoBody, ContentLength: int64(len(body)),
		RemoteAddr: r.RemoteAddr, TLS: r.TLS,
	}
	if len(body) > 0 {
		rr.Body = readCloser{bytes.NewReader(body)}
	}
	return rr.WithContext(r.Context()), nil
}

// approvedByField is the Approval-Approved-By value: a Structured Field
// List (RFC 9651) of the approvers' subjects in approval order, each a
// String, or a Display String when it is not ASCII, so that a subject
// holding a comma is one member and not two.
func approvedByField(subjects []string) (string, error) {
	list := make(httpsfv.List, len(subjects))
	for i, sub := range subjects {
		var v any = sub
		for j := 0; j < len(sub); j++ {
			if sub[j] < 0x20 || sub[j] > 0x7e {
				v = httpsfv.DisplayString(sub)
				break
			}
		}
		list[i] = httpsfv.NewItem(v)
	}
	return httpsfv.Marshal(list)
}

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// discardWriter takes an answer nobody reads directly (an auto-complete's,
// which the approver sees in the record).
type discardWriter struct{ h http.Header }

func (d *discardWriter) Header() http.Header         { return d.h }
func (d *discardWriter) Write(b []byte) (int, error) { return len(b), nil }
func (d *discardWriter) WriteHeader(int)             {}

// captureWriter passes the backend's answer to the client while keeping
// its status and the first bytes of its body for the record.
type captureWriter struct {
	http.ResponseWriter
	status    int
	limit     int
	buf       bytes.Buffer
	truncated bool
}

func (c *captureWriter) WriteHeader(code int) {
	if c.status == 0 && code >= 200 {
		c.status = code
	}
	c.ResponseWriter.WriteHeader(code)
}

func (c *captureWriter) Write(b []byte) (int, error) {
	if c.status == 0 {
		c.status = http.StatusOK
	}
	if room := c.limit - c.buf.Len(); room > 0 {
		c.buf.Write(b[:min(room, len(b))])
		if len(b) > room {
			c.truncated = true
		}
	} else if len(b) > 0 {
		c.truncated = true
	}
	return c.ResponseWriter.Write(b)
}

// result is what the record keeps of the answer that went through c.
func (c *captureWriter) result(err error) record.Result {
	res := record.Result{Status: c.status}
	if c.status != 0 {
		res.Headers = c.Header().Clone()
		res.Headers.Del(RequestIDHeader)
		res.Headers.Del("Set-Cookie")
		res.Body, res.Truncated = excerpt(c.buf.Bytes(), c.truncated)
	}
	if err != nil {
		res.Error = err.Error()
	}
	return res
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (c *captureWriter) Unwrap() http.ResponseWriter { return c.ResponseWriter }

// Flush passes flushes through for streamed answers.
func (c *captureWriter) Flush() {
	if f, ok := c.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack is refused: a replay is one request and one answer.
func (c *captureWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	return nil, nil, errors.New("a replayed request cannot be hijacked")
}

// excerpt keeps the start of a body as text, cut on a rune boundary, or
// base64 if it is not text.
func excerpt(b []byte, truncated bool) (string, bool) {
	if !utf8.Valid(b) {
		cut := len(b)
		for cut > 0 && cut > len(b)-utf8.UTFMax && !utf8.Valid(b[:cut]) {
			cut--
		}
		if utf8.Valid(b[:cut]) {
			return string(b[:cut]), truncated || cut < len(b)
		}
		return "base64:" + base64Encode(b), truncated
	}
	return string(b), truncated
}

func base64Encode(b []byte) string { return base64.StdEncoding.EncodeToString(b) }
