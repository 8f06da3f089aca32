package record

import (
	"fmt"
	"strings"
	"time"
)

// SystemActor is the actor of history events the gateway itself causes.
const SystemActor = "gateway"

// Error codes of the public contract that the lifecycle produces.
const (
	CodeSelfApproval      = "self_approval"
	CodeNotAnApprover     = "not_an_approver"
	CodeNotTheRequester   = "not_the_requester"
	CodeInvalidTransition = "invalid_transition"
	CodeAlreadyApproved   = "already_approved"
	CodeRequirementMet    = "requirement_met"
	CodeNotesRequired     = "notes_required"
	CodeStalePayload      = "stale_payload"
)

// Error is a refused action: a contract error code, a message for people and,
// for invalid transitions, the status the request is in.
type Error struct {
	Code    string
	Message string
	Status  Status
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refuse(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalid(action Action, s Status) *Error {
	return &Error{Code: CodeInvalidTransition, Status: s,
		Message: fmt.Sprintf("cannot %s a request that is %s", action, s)}
}

// move applies one transition of the table and records it in the history.
func (r *Record) move(action Action, to Status, actor, verb, notes string, now time.Time) error {
	if !allowedTo(action, r.Status, to) {
		return invalid(action, r.Status)
	}
	r.History = append(r.History, Event{At: now, Actor: actor, Action: verb, From: r.Status, To: to, Notes: notes})
	r.Status = to
	r.UpdatedAt = now
	return nil
}

// ApproveInput is what an approver sends.
type ApproveInput struct {
	Notes string
	// PayloadSHA256, when set, must equal the record's payload hash: the
	// approver approves exactly what they saw.
	PayloadSHA256 string
	// RequireNotes refuses an approval without notes.
	RequireNotes bool
	// AuthTime, ACR and AMR are the approver's authentication, kept with
	// the approval.
	AuthTime *time.Time
	ACR      string
	AMR      []string
}

// IsParty reports whether p may see r: its requester (exactly: a grant),
// an eligible approver, or an admin.
func (r *Record) IsParty(p Principal, admin bool) bool {
	return admin || p.Is(r.Requester.Subject) || r.IsApprover(p)
}

// Can reports whether p may take action on r now: nil, or the refusal the
// action would get. It is the one statement of who may do what (the API
// acts through it, the console shows its buttons by it). It does not look
// at an action's input (notes, the payload hash).
func (r *Record) Can(action Action, p Principal) error {
	switch action {
	case ActionApprove, ActionReject:
		if p.CouldBe(r.Requester.Subject) {
			if action == ActionReject {
				return refuse(CodeSelfApproval, "you cannot decide on your own request; cancel it instead")
			}
			return refuse(CodeSelfApproval, "you cannot approve your own request")
		}
		if !r.IsApprover(p) {
			return refuse(CodeNotAnApprover, "%sing needs membership of %s", strings.TrimSuffix(string(action), "e"), r.requiredGroups())
		}
	case ActionCancel, ActionClaim:
		if !p.Is(r.Requester.Subject) {
			verb := map[Action]string{ActionCancel: "cancel", ActionClaim: "complete"}[action]
			return refuse(CodeNotTheRequester, "only the requester can %s a request", verb)
		}
	default:
		return fmt.Errorf("%s is not an action people take", action)
	}
	if !Allowed(action, r.Status) {
		return invalid(action, r.Status)
	}
	if action == ActionApprove {
		for _, a := range r.approvals() {
			if p.CouldBe(a.Subject) {
				return refuse(CodeAlreadyApproved, "%s has already approved this request", p.Subject)
			}
		}
	}
	return nil
}

// Approve counts p's approval. The request becomes approved when every
// requirement is met. An approval counts toward exactly one requirement: an
// identity in two required groups fills one of them, chosen so that the
// approvals given so far meet as many requirements as possible.
func (r *Record) Approve(p Principal, in ApproveInput, now time.Time) error {
	if err := r.Can(ActionApprove, p); err != nil {
		return err
	}
	if in.PayloadSHA256 != "" && !strings.EqualFold(in.PayloadSHA256, r.PayloadSHA256) {
		return refuse(CodeStalePayload, "the request's payload is %s, not the %s you approved", r.PayloadSHA256, in.PayloadSHA256)
	}
	if in.RequireNotes && strings.TrimSpace(in.Notes) == "" {
		return refuse(CodeNotesRequired, "notes are required to approve")
	}
	eligible := r.EligibleGroups(p)
	all := append(r.approvals(), Approval{Subject: p.Subject, Notes: in.Notes, PayloadSHA256: r.PayloadSHA256, At: now, Eligible: eligible,
		AuthTime: in.AuthTime, ACR: in.ACR, AMR: in.AMR})
	if !r.assign(all) {
		return refuse(CodeRequirementMet, "the approvals needed from %s are already given", strings.Join(eligible, ", "))
	}
	to := NeedsApproval
	if r.QuorumMet() {
		to = Approved
	}
	if err := r.move(ActionApprove, to, p.Subject, "approved", in.Notes, now); err != nil {
		return err
	}
	if to == Approved {
		if r.CompletionExpiry > 0 {
			r.ExpiresAt = now.Add(time.Duration(r.CompletionExpiry))
		}
		if r.AutoComplete {
			// Claimed in the same write as the approval: nobody can cancel
			// or complete in between.
			if err := r.move(ActionClaim, Completing, SystemActor, "completing", "auto-complete", now); err != nil {
				return err
			}
			r.ClaimedAt = &now
		}
	}
	return nil
}

// Reject vetoes the request. Notes are required.
func (r *Record) Reject(p Principal, notes string, now time.Time) error {
	if err := r.Can(ActionReject, p); err != nil {
		return err
	}
	if strings.TrimSpace(notes) == "" {
		return refuse(CodeNotesRequired, "notes are required to reject: tell the requester why")
	}
	return r.move(ActionReject, Rejected, p.Subject, "rejected", notes, now)
}

// Cancel withdraws the request; only its requester may.
func (r *Record) Cancel(p Principal, notes string, now time.Time) error {
	if err := r.Can(ActionCancel, p); err != nil {
		return err
	}
	return r.move(ActionCancel, Canceled, p.Subject, "canceled", notes, now)
}

// Claim marks an approved request as being replayed by its requester; the
// store fences it so only one claim wins.
func (r *Record) Claim(p Principal, now time.Time) error {
	if err := r.Can(ActionClaim, p); err != nil {
		return err
	}
	if err := r.move(ActionClaim, Completing, p.Subject, "completing", "", now); err != nil {
		return err
	}
	r.ClaimedAt = &now
	return nil
}

// Finish records the backend's answer to the replay.
func (r *Record) Finish(res Result, now time.Time) error {
	res.CompletedAt = now
	if err := r.move(ActionFinish, Completed, SystemActor, "completed", fmt.Sprintf("backend answered %d", res.Status), now); err != nil {
		return err
	}
	r.Result = &res
	return nil
}

// Fail records that the replay did not happen, or that its outcome is
// unknown; a failed request is never replayed again.
func (r *Record) Fail(res Result, now time.Time) error {
	res.CompletedAt = now
	if err := r.move(ActionFail, Failed, SystemActor, "failed", res.Error, now); err != nil {
		return err
	}
	r.Result = &res
	return nil
}

// NoteBypassResult records the backend's answer to a break-glass call.
// The request stays bypassed.
func (r *Record) NoteBypassResult(res Result, now time.Time) {
	res.CompletedAt = now
	notes := fmt.Sprintf("backend answered %d", res.Status)
	if res.Status == 0 {
		notes = "no answer from the backend: " + res.Error
	}
	r.History = append(r.History, Event{At: now, Actor: SystemActor, Action: "passed", From: Bypassed, To: Bypassed, Notes: notes})
	r.UpdatedAt = now
	r.Result = &res
}

// Remind records that people were reminded of the request's coming expiry;
// it changes no status, and happens once per status. It reports false when
// a reminder was already recorded.
func (r *Record) Remind(now time.Time) bool {
	for _, e := range r.History {
		if e.Action == "reminder" && e.From == r.Status {
			return false
		}
	}
	r.History = append(r.History, Event{At: now, Actor: SystemActor, Action: "reminder", From: r.Status, To: r.Status,
		Notes: "expires " + r.ExpiresAt.UTC().Format(time.RFC3339)})
	r.UpdatedAt = now
	return true
}

// OutcomeUnknown is the failure reason of a replay whose claim timed out.
const OutcomeUnknown = "outcome unknown: the replay was sent but its result was never recorded"

// Due returns the system action a request is due for at now: expire (its
// time ran out), fail (its replay claim is older than claimTimeout), or ""
// when none.
func (r *Record) Due(now time.Time, claimTimeout time.Duration) Action {
	switch {
	case Allowed(ActionExpire, r.Status) && !now.Before(r.ExpiresAt):
		return ActionExpire
	case r.Status == Completing && r.ClaimedAt != nil && !now.Before(r.ClaimedAt.Add(claimTimeout)):
		return ActionFail
	}
	return ""
}

// ApplyDue carries out the action Due returns and reports whether it did.
func (r *Record) ApplyDue(now time.Time, claimTimeout time.Duration) (bool, error) {
	switch r.Due(now, claimTimeout) {
	case ActionExpire:
		return true, r.Expire(now)
	case ActionFail:
		return true, r.Fail(Result{Error: OutcomeUnknown}, now)
	}
	return false, nil
}

// Expire ends a request whose time ran out.
func (r *Record) Expire(now time.Time) error {
	return r.move(ActionExpire, Expired, SystemActor, "expired", "", now)
}
