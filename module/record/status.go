// Package record holds the approval request record and its lifecycle: the
// statuses, the transition table, quorum counting and the rules for who may
// act on a request. It is pure: no I/O, no clock of its own.
package record

// Status is where a request stands in its lifecycle.
type Status string

// The statuses of the public contract.
const (
	NeedsApproval Status = "needs_approval"
	Approved      Status = "approved"
	Completing    Status = "completing"
	Completed     Status = "completed"
	Rejected      Status = "rejected"
	Canceled      Status = "canceled"
	Expired       Status = "expired"
	Failed        Status = "failed"
	Bypassed      Status = "bypassed"
)

// Statuses lists every status, in lifecycle order.
var Statuses = []Status{NeedsApproval, Approved, Completing, Completed, Rejected, Canceled, Expired, Failed, Bypassed}

// Valid reports whether s is one of the known statuses.
func (s Status) Valid() bool {
	for _, v := range Statuses {
		if s == v {
			return true
		}
	}
	return false
}

// Pending reports whether a request in this status still holds its
// resource: needs_approval, approved or completing.
func (s Status) Pending() bool {
	return s == NeedsApproval || s == Approved || s == Completing
}

// Terminal reports whether the status can never change again.
func (s Status) Terminal() bool {
	return s.Valid() && !s.Pending()
}

// Action is something done to a request.
type Action string

// The actions that move a request between statuses.
const (
	ActionApprove Action = "approve"
	ActionReject  Action = "reject"
	ActionCancel  Action = "cancel"
	ActionClaim   Action = "complete" // approved → completing: the replay is claimed
	ActionFinish  Action = "finish"   // completing → completed: the backend answered
	ActionFail    Action = "fail"     // completing → failed: the replay did not happen or its outcome is unknown
	ActionExpire  Action = "expire"
)

// Transition is one allowed move of the lifecycle.
type Transition struct {
	Action Action
	From   Status
	To     Status
}

// Transitions is the lifecycle, written once: the API, the store and the
// tests all follow it. An approve that does not yet meet the quorum leaves
// the request in needs_approval.
var Transitions = []Transition{
	{ActionApprove, NeedsApproval, NeedsApproval},
	{ActionApprove, NeedsApproval, Approved},
	{ActionReject, NeedsApproval, Rejected},
	{ActionCancel, NeedsApproval, Canceled},
	{ActionCancel, Approved, Canceled},
	{ActionExpire, NeedsApproval, Expired},
	{ActionExpire, Approved, Expired},
	{ActionClaim, Approved, Completing},
	{ActionFinish, Completing, Completed},
	{ActionFail, Completing, Failed},
}

// Allowed reports whether action may be taken on a request in status from.
func Allowed(action Action, from Status) bool {
	for _, t := range Transitions {
		if t.Action == action && t.From == from {
			return true
		}
	}
	return false
}

// allowedTo reports whether action may move a request from one status to another.
func allowedTo(action Action, from, to Status) bool {
	for _, t := range Transitions {
		if t.Action == action && t.From == from && t.To == to {
			return true
		}
	}
	return false
}
