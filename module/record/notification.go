package record

import "time"

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

// ForApprovers reports whether an event is for the request's approvers
// (rather than its requester): a new request, or one about to expire
// before it was decided.
func ForApprovers(typ string, status Status) bool {
	return typ == EventParked || typ == EventBypassed || (typ == EventExpiring && status == NeedsApproval)
}

// EventType maps an audit event to the event it raises, or "" for steps
// that raise none (an approval short of the quorum, a claim, a dry run).
func EventType(e AuditEvent) string {
	switch e.Action {
	case "parked":
		return EventParked
	case "approved":
		if e.To == Approved || e.To == Completing {
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

// Notification is one event of the event stream and the webhooks: a
// lifecycle step of a request, with a stable id (the etcd revision of its
// transaction, and its index there).
type Notification struct {
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

// NewNotification is the notification an audit event raises, with id (its
// place in the log) and link (the request's page).
func NewNotification(id string, e AuditEvent, link string) Notification {
	return Notification{ID: id, Type: EventType(e), Time: e.At, RequestID: e.RequestID, Status: string(e.To),
		Actor: e.Actor, Requester: e.Requester, Policy: e.Policy, Resource: e.Resource, Notes: e.Notes,
		Link: link, Groups: e.Groups}
}
