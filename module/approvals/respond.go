package approvals

import (
	"encoding/json"
	"errors"
	"net/http"
	"strconv"

	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
)

// Error codes of the public contract produced here (the lifecycle's own
// codes live in package record).
const (
	CodeUnauthenticated       = "unauthenticated"
	CodeDenied                = "denied"
	CodeJustificationRequired = "justification_required"
	CodeJustificationTooLong  = "justification_too_long"
	CodeBodyTooLarge          = inspect.CodeBodyTooLarge
	CodePendingExists         = "pending_exists"
	CodeForbidden             = "forbidden"
	CodeNotFound              = "not_found"
	CodeStoreUnavailable      = "store_unavailable"
	CodeBadRequest            = "bad_request"
	CodeReplayFailed          = "replay_failed"
	CodeMethodNotAllowed      = "method_not_allowed"
	CodeTooManyPending        = "too_many_pending"
)

// apiError is an error answer: status, contract code, message and extra
// fields (request_id, status, policy).
type apiError struct {
	status  int
	code    string
	message string
	extra   map[string]any
}

func (e *apiError) Error() string { return e.code + ": " + e.message }

func fail(status int, code, message string) *apiError {
	return &apiError{status: status, code: code, message: message}
}

func (e *apiError) with(k string, v any) *apiError {
	if e.extra == nil {
		e.extra = map[string]any{}
	}
	e.extra[k] = v
	return e
}

// statusOf maps lifecycle refusals to HTTP statuses.
var statusOf = map[string]int{
	record.CodeSelfApproval:      http.StatusForbidden,
	record.CodeNotAnApprover:     http.StatusForbidden,
	record.CodeNotTheRequester:   http.StatusForbidden,
	record.CodeInvalidTransition: http.StatusConflict,
	record.CodeAlreadyApproved:   http.StatusConflict,
	record.CodeRequirementMet:    http.StatusConflict,
	record.CodeStalePayload:      http.StatusConflict,
	record.CodeNotesRequired:     http.StatusBadRequest,
}

// asAPIError turns any error of the core into an answer; store failures
// become 503 so that nothing is ever let through on a store error.
func asAPIError(err error) *apiError {
	var ae *apiError
	if errors.As(err, &ae) {
		return ae
	}
	var ie *inspect.Error
	if errors.As(err, &ie) {
		return fail(ie.Status, ie.Code, ie.Message)
	}
	var re *record.Error
	if errors.As(err, &re) {
		e := fail(statusOf[re.Code], re.Code, re.Message)
		if e.status == 0 {
			e.status = http.StatusConflict
		}
		if re.Code == record.CodeInvalidTransition {
			e = e.with("status", re.Status)
		}
		return e
	}
	var pe *store.PendingError
	if errors.As(err, &pe) {
		return fail(http.StatusConflict, CodePendingExists, "a request for this resource is already pending").with("request_id", pe.ID)
	}
	if errors.Is(err, store.ErrTooManyPending) {
		return fail(http.StatusTooManyRequests, CodeTooManyPending, "you have too many pending requests; complete or cancel some first")
	}
	if errors.Is(err, store.ErrNotFound) {
		return fail(http.StatusNotFound, CodeNotFound, "no such request")
	}
	if errors.Is(err, store.ErrBadCursor) {
		return fail(http.StatusBadRequest, CodeBadRequest, err.Error())
	}
	return fail(http.StatusServiceUnavailable, CodeStoreUnavailable, "the approval store is unavailable; try again shortly")
}

// writeError writes err as the contract's JSON error body.
func writeError(w http.ResponseWriter, err error) {
	e := asAPIError(err)
	body := map[string]any{"code": e.code, "message": e.message}
	for k, v := range e.extra {
		body[k] = v
	}
	h := w.Header()
	switch e.status {
	case http.StatusUnauthorized:
		h.Set("WWW-Authenticate", `Bearer error="invalid_token"`)
		if e.code == CodeInsufficientAuthentication {
			h.Set("WWW-Authenticate", challenge(e))
		}
		if e.extra["no_token"] == true {
			h.Set("WWW-Authenticate", "Bearer")
			delete(body, "no_token")
		}
	case http.StatusServiceUnavailable:
		h.Set("Retry-After", strconv.Itoa(retryAfterSeconds))
	}
	writeJSON(w, e.status, map[string]any{"error": body})
}

// retryAfterSeconds is what a 503 asks clients to wait.
const retryAfterSeconds = 5

func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"encoding the answer failed"}}`, http.StatusInternalServerError)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-store")
	h.Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	_, _ = w.Write(append(b, '\n'))
}
