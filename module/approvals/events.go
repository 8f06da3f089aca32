package approvals

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
)

// Event types of the public contract.
const (
	EventParked        = "approval.request.parked"
	EventApproved      = "approval.request.approved"
	EventRejected      = "approval.request.rejected"
	EventCanceled      = "approval.request.canceled"
	EventCompleted     = "approval.request.completed"
	EventFailed        = "approval.request.failed"
	EventExpired       = "approval.request.expired"
	EventBypassed      = "approval.request.bypassed"
	EventPolicyChanged = "approval.policy.changed"
	// EventExpiring reminds approvers (needs_approval) or the requester
	// (approved) that the request expires soon.
	EventExpiring = "approval.request.expiring"
)

// EventTypes lists every event type.
var EventTypes = []string{EventParked, EventApproved, EventRejected, EventCanceled, EventCompleted, EventFailed, EventExpired, EventBypassed, EventExpiring, EventPolicyChanged}

// forApprovers reports whether an event is for the request's approvers
// (rather than its requester): a new request, or one about to expire
// before it was decided.
func forApprovers(typ string, status record.Status) bool {
	return typ == EventParked || typ == EventBypassed || (typ == EventExpiring && status == record.NeedsApproval)
}

// eventType maps an audit event to the event it raises, or "" for steps
// that raise none (an approval short of the quorum, a claim, a dry run).
func eventType(e record.AuditEvent) string {
	switch e.Action {
	case "parked":
		return EventParked
	case "approved":
		if e.To == record.Approved || e.To == record.Completing {
			return EventApproved
		}
	case "rejected":
		return EventRejected
	case "canceled":
		return EventCanceled
	case "completed":
		return EventCompleted
	case "failed":
		return EventFailed
	case "expired":
		return EventExpired
	case "bypassed":
		return EventBypassed
	case "reminder":
		return EventExpiring
	case "policy_changed", "policy_removed":
		return EventPolicyChanged
	}
	return ""
}

// Event is one notification: a lifecycle step of a request, with a stable
// id (the etcd revision of its transaction, and its index there).
type Event struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Time      time.Time `json:"time"`
	RequestID string    `json:"request_id"`
	Status    string    `json:"status,omitempty"`
	Actor     string    `json:"actor"`
	Requester string    `json:"requester,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Notes     string    `json:"notes,omitempty"`
	Link      string    `json:"link"`
	// Groups are the approver groups, for routing.
	Groups []string `json:"approver_groups,omitempty"`
}

func (s *Service) newEvent(cur store.AuditCursor, e record.AuditEvent, base string) Event {
	return Event{ID: cur.String(), Type: eventType(e), Time: e.At, RequestID: e.RequestID, Status: string(e.To),
		Actor: e.Actor, Requester: e.Requester, Policy: e.Policy, Resource: e.Resource, Notes: e.Notes,
		Link: base + s.o.Prefix + "/requests/" + e.RequestID, Groups: e.Groups}
}

// mayseeEvent reports whether who may see an event: as for the request itself.
func (s *Service) mayseeEvent(who *identity.Identity, e record.AuditEvent) bool {
	if s.isAdmin(who) || s.principal(who).Is(e.Requester) {
		return true
	}
	for _, g := range e.Groups {
		if slices.Contains(who.Groups, g) {
			return true
		}
	}
	return false
}

// baseURL is the scheme and host of r, for links in events.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// events streams the events the caller may see as server-sent events,
// resumable with Last-Event-ID; when the history asked for was compacted
// the stream says "reset" and the client re-lists.
func (s *Service) events(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	var after store.AuditCursor
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		c, err := store.ParseAuditCursor(last)
		if err != nil {
			writeError(w, fail(http.StatusBadRequest, CodeBadRequest, err.Error()))
			return
		}
		after = c
	} else {
		rev, err := s.o.Store.Revision(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		after = store.AuditCursor{Rev: rev + 1, Index: -1}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	if rc.Flush() != nil {
		return
	}
	base := baseURL(r)
	err := s.o.Store.WatchAudit(r.Context(), after, func(cur store.AuditCursor, e record.AuditEvent) error {
		ev := s.newEvent(cur, e, base)
		if ev.Type == "" || !s.mayseeEvent(who, e) {
			return nil
		}
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b); err != nil {
			return err
		}
		return rc.Flush()
	})
	if errors.Is(err, store.ErrCompacted) {
		_, _ = fmt.Fprint(w, "event: reset\ndata: {\"reason\": \"the events after your Last-Event-ID are no longer kept: list the requests again\"}\n\n")
		_ = rc.Flush()
	}
}
