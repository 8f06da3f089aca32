package approvals

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// errNotParty hides a request from a caller who is no party to it.
var errNotParty = fail(http.StatusNotFound, CodeNotFound, "no such request")

// deliveries is the webhook delivery log, for admins.
func (s *Service) deliveries(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "the delivery log is for members of the admin groups"))
		return
	}
	limit, err := limitParam(r.URL.Query().Get("limit"))
	if err != nil {
		writeError(w, err)
		return
	}
	ds, err := s.store.Deliveries(r.Context(), limit)
	writePage(w, "deliveries", ds, "", err)
}

func (s *Service) list(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	o, err := s.listOptions(r.URL.Query(), who)
	if err != nil {
		writeError(w, err)
		return
	}
	if o == nil {
		writePage[*record.Record](w, "requests", nil, "", nil)
		return
	}
	recs, next, err := s.store.List(r.Context(), *o)
	writePage(w, "requests", s.ownSiteOnly(recs), next, err)
}

// ownSiteOnly keeps the records of this service's site. The store is the
// site's own key space, so this drops nothing unless a record was put
// there by hand.
func (s *Service) ownSiteOnly(recs []*record.Record) []*record.Record {
	return slices.DeleteFunc(recs, func(r *record.Record) bool { return !s.ownSite(r) })
}

// listOptions reads a list query (the API's and the console's) under the
// view rules; nil options mean the view is empty.
func (s *Service) listOptions(q url.Values, who *identity.Identity) (*store.ListOptions, error) {
	var o store.ListOptions
	switch view := q.Get("view"); view {
	case "", "mine":
		o.Requester = who.Subject
	case "received":
		if len(who.Groups) == 0 {
			return nil, nil
		}
		o.Groups = who.Groups
	case "all":
		if !s.isAdmin(who) {
			return nil, fail(http.StatusForbidden, CodeForbidden, "view=all is for members of the admin groups")
		}
	default:
		return nil, fail(http.StatusBadRequest, CodeBadRequest, "view must be mine, received or all")
	}
	for _, v := range q["status"] {
		for _, st := range strings.Split(v, ",") {
			if st == "" {
				continue
			}
			if !record.Status(st).Valid() {
				return nil, fail(http.StatusBadRequest, CodeBadRequest, "unknown status "+strconv.Quote(st))
			}
			o.Statuses = append(o.Statuses, record.Status(st))
		}
	}
	o.Policy, o.RequestedBy, o.Resource, o.Cursor = q.Get("policy"), q.Get("requester"), q.Get("resource"), q.Get("cursor")
	var err error
	if o.Limit, err = limitParam(q.Get("limit")); err != nil {
		return nil, err
	}
	if o.CreatedAfter, o.CreatedBefore, err = timeRange(q.Get("created_after"), q.Get("created_before")); err != nil {
		return nil, err
	}
	return &o, nil
}

// writePage writes one page of a list: {key: [...], "next_cursor": "..."}
// (next_cursor absent on the last page), or err.
func writePage[T any](w http.ResponseWriter, key string, items []T, next string, err error) {
	if err != nil {
		writeError(w, err)
		return
	}
	if items == nil {
		items = []T{}
	}
	out := map[string]any{key: items}
	if next != "" {
		out["next_cursor"] = next
	}
	writeJSON(w, http.StatusOK, out)
}

// requestView is a record as GET shows it: with the parked body.
type requestView struct {
	*record.Record
	Body       *string `json:"body,omitempty"`
	BodyBase64 string  `json:"body_base64,omitempty"`
}

func (s *Service) get(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	id := r.PathValue("id")
	rec, body, err := s.load(r, who, id)
	if err != nil {
		writeError(w, err)
		return
	}
	v := requestView{Record: rec}
	if utf8.Valid(body) {
		b := string(body)
		v.Body = &b
	} else {
		v.BodyBase64 = base64Encode(body)
	}
	w.Header().Set("ETag", `"`+rec.PayloadSHA256+`"`)
	writeJSON(w, http.StatusOK, v)
}

// load reads a request and its body for who, under the rules of every read:
// 404 for a caller who is no party, and overdue requests recorded as
// expired or failed first.
func (s *Service) load(r *http.Request, who *identity.Identity, id string) (*record.Record, []byte, error) {
	rec, _, body, err := s.store.GetWithPayload(r.Context(), id)
	if err != nil {
		return nil, nil, err
	}
	if !s.ownSite(rec) || !rec.IsParty(s.principal(who), s.isAdmin(who)) {
		return nil, nil, errNotParty
	}
	if rec.Due(s.clock(), s.ClaimTimeout) != "" {
		// Expiry and claim timeouts hold even when nothing sweeps: record
		// them now.
		if rec, err = s.mutate(r, who, id, func(*record.Record) error { return nil }); err != nil && !isOverdue(err) {
			return nil, nil, err
		}
	}
	return rec, body, nil
}

// act serves one action on a request: approve, reject, cancel or complete.
func (s *Service) act(action string) func(http.ResponseWriter, *http.Request, *identity.Identity) {
	return func(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
		s.serveAction(w, r, who, action)
	}
}

// serveAction reads the body of an action call (notes, and the payload hash
// from it or from If-Match; readActionInput) and takes the action.
func (s *Service) serveAction(w http.ResponseWriter, r *http.Request, who *identity.Identity, action string) {
	id, next := r.PathValue("id"), nextOf(r)
	in, err := readActionInput(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if m := strings.Trim(strings.TrimPrefix(r.Header.Get("If-Match"), "W/"), `"`); m != "" && in.PayloadSHA256 == "" {
		in.PayloadSHA256 = m
	}
	if action == "complete" {
		s.complete(w, r, who, id, next)
		return
	}
	rec, err := s.perform(r, who, id, action, in, next)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// perform approves, rejects or cancels request id as who: the one code path
// of the API and the console. An approval that meets the quorum of an
// auto-complete request also replays it.
func (s *Service) perform(r *http.Request, who *identity.Identity, id, action string, in actionInput, next Next) (*record.Record, error) {
	p := s.principal(who)
	now := s.clock()
	shown := authOf(who)
	var fn func(*record.Record) error
	switch action {
	case "approve":
		if _, err := s.keys.current(r.Context()); err != nil {
			// An approval may claim an auto-complete replay, which must
			// be attested.
			return nil, err
		}
		fn = func(rec *record.Record) error {
			if err := rec.Can(record.ActionApprove, p); err != nil {
				return err
			}
			if err := stepUp(rec, shown, now); err != nil {
				return err
			}
			return rec.Approve(p, record.ApproveInput{Notes: in.Notes, PayloadSHA256: in.PayloadSHA256, RequireNotes: s.RequireApprovalNotes,
				AuthTime: shown.authTime, ACR: shown.acr, AMR: shown.amr}, now)
		}
	case "reject":
		fn = func(rec *record.Record) error {
			if err := rec.Can(record.ActionReject, p); err != nil {
				return err
			}
			if err := stepUp(rec, shown, now); err != nil {
				return err
			}
			return rec.Reject(p, in.Notes, now)
		}
	case "cancel":
		fn = func(rec *record.Record) error { return rec.Cancel(p, in.Notes, now) }
	default:
		return nil, fail(http.StatusNotFound, CodeNotFound, "no such action "+strconv.Quote(action))
	}
	rec, err := s.mutate(r, who, id, fn)
	if err != nil {
		s.log.Info("action refused", zap.String("action", action), zap.String("request_id", id),
			zap.String("actor", who.Subject), zap.String("reason", asAPIError(err).code))
		return rec, err
	}
	s.audit(rec, who.Subject, action, in.Notes, r)
	s.annotate(r, "approval_"+pastTense(action), rec.Policy, rec)
	if action == "approve" && rec.Status == record.Completing {
		// Auto-complete: the approval that met the quorum also claimed the
		// replay. No caller's token goes to the backend: the credential
		// comes from the proxy's configuration.
		s.audit(rec, record.SystemActor, "completing", "", r)
		claimed, c, err := s.store.ReadClaimed(r.Context(), id)
		if err != nil {
			// The claim stands: the request is never replayed twice. It
			// ends failed once the claim times out.
			s.log.Error("reading the parked body for replay", zap.String("request_id", id), zap.Error(err))
			return nil, err
		}
		return s.replay(&captureWriter{ResponseWriter: &discardWriter{h: http.Header{}}, limit: s.ResultExcerpt}, r, claimed, c, "", next)
	}
	return rec, nil
}

func pastTense(action string) string {
	return map[string]string{"approve": "approved", "reject": "rejected", "cancel": "canceled"}[action]
}

// errOverdue marks an action refused because the request had just run out
// of time (expired) or its replay claim timed out (failed).
type errOverdue struct{ err *record.Error }

func (e errOverdue) Error() string { return e.err.Error() }
func (e errOverdue) Unwrap() error { return e.err }

func isOverdue(err error) bool {
	var e errOverdue
	return errors.As(err, &e)
}

// mutate applies fn to request id as who, under the rules every action
// shares: a caller who is no party to the request gets 404, and an overdue
// request is first recorded as expired or failed (and the action refused).
func (s *Service) mutate(r *http.Request, who *identity.Identity, id string, fn func(*record.Record) error) (*record.Record, error) {
	return s.mutateBy(r, who, fn, func(f func(*record.Record) error) (*record.Record, error) {
		return s.storeMutate(r.Context(), id, s.clientIP(r), f)
	})
}

// mutateBy is mutate with the store write of its choice (write applies
// the function it is given to the stored record).
func (s *Service) mutateBy(r *http.Request, who *identity.Identity, fn func(*record.Record) error,
	write func(func(*record.Record) error) (*record.Record, error)) (*record.Record, error) {
	p := s.principal(who)
	admin := s.isAdmin(who)
	overdue := false
	rec, err := write(func(rec *record.Record) error {
		overdue = false
		if !s.ownSite(rec) || !rec.IsParty(p, admin) {
			return errNotParty
		}
		done, err := rec.ApplyDue(s.clock(), s.ClaimTimeout)
		if err != nil || done {
			overdue = done
			return err
		}
		return fn(rec)
	})
	if err != nil {
		return rec, err
	}
	if overdue {
		s.audit(rec, record.SystemActor, string(rec.Status), "", r)
		msg := "the request expired at " + rec.ExpiresAt.UTC().Format(time.RFC3339)
		if rec.Status == record.Failed {
			msg = "the request's replay was claimed but never recorded; it is failed and will not be replayed"
		}
		return rec, errOverdue{err: &record.Error{Code: record.CodeInvalidTransition, Status: rec.Status, Message: msg}}
	}
	return rec, nil
}

func limitParam(l string) (int, error) {
	if l == "" {
		return 0, nil
	}
	n, err := strconv.Atoi(l)
	if err != nil || n < 1 || n > store.MaxLimit {
		return 0, fail(http.StatusBadRequest, CodeBadRequest, "limit must be a number from 1 to "+strconv.Itoa(store.MaxLimit))
	}
	return n, nil
}

// timeRange parses two optional RFC 3339 times.
func timeRange(after, before string) (time.Time, time.Time, error) {
	var out [2]time.Time
	for i, v := range []string{after, before} {
		if v == "" {
			continue
		}
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			return time.Time{}, time.Time{}, fail(http.StatusBadRequest, CodeBadRequest, strconv.Quote(v)+" is not an RFC 3339 time")
		}
		out[i] = t
	}
	return out[0], out[1], nil
}

// auditLog serves the global audit log to admins.
func (s *Service) auditLog(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "the audit log is for members of the admin groups"))
		return
	}
	q := r.URL.Query()
	o := store.AuditOptions{RequestID: q.Get("request_id"), Actor: q.Get("actor"), Action: q.Get("action"), Cursor: q.Get("cursor")}
	var err error
	if o.Limit, err = limitParam(q.Get("limit")); err != nil {
		writeError(w, err)
		return
	}
	if o.After, o.Before, err = timeRange(q.Get("after"), q.Get("before")); err != nil {
		writeError(w, err)
		return
	}
	events, next, err := s.store.Audit(r.Context(), o)
	writePage(w, "events", events, next, err)
}

// healthz answers load balancers, without a token: 200 when the store
// answers and the runtime policies are loaded, 503 otherwise, and nothing
// more (no file paths, errors or roles for anyone who can reach the port).
func (s *Service) healthz(w http.ResponseWriter, r *http.Request) {
	h := s.checkHealth(r.Context())
	writeJSON(w, h.code, map[string]string{"status": h.status})
}

// health answers operators (members of the admin groups) with the details:
// the policy files in force and the last reload error ("degraded": the
// previous policies are still in force), and which elected roles this
// gateway holds.
func (s *Service) health(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "health details are for members of the admin groups"))
		return
	}
	h := s.checkHealth(r.Context())
	st := s.policies.Status()
	status := h.status
	if st.Error != "" && status == "ok" {
		status = "degraded"
	}
	writeJSON(w, h.code, map[string]any{"status": status, "store": h.store, "policies": st,
		"leader": map[string]bool{"sweeper": s.store.Leads(sweeperRole), "notifier": s.store.Leads("notifier")}})
}

type healthState struct {
	code          int
	status, store string
}

func (s *Service) checkHealth(ctx context.Context) healthState {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	h := healthState{http.StatusOK, "ok", "ok"}
	if !s.runtimeReady.Load() {
		h.code, h.status = http.StatusServiceUnavailable, "starting"
	}
	if err := s.store.Ping(ctx); err != nil {
		h.code, h.status, h.store = http.StatusServiceUnavailable, "unavailable", "unavailable"
	}
	return h
}

// detached gives follow-up store writes a context that survives the
// caller hanging up, bounded in time.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
}
