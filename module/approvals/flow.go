package approvals

import (
	"net/http"
	"net/url"
	"unicode/utf8"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
)

// Flow is what the web console asks of the request flow, through the same
// code paths as the API. *Service is one.
type Flow interface {
	// Act approves, rejects or cancels request id as who, with notes and
	// the payload hash the person saw (or "").
	Act(r *http.Request, who *identity.Identity, id, action, notes, payloadSHA256 string, next Next) (*record.Record, error)
	// Load reads request id and its parked body for who, a party to it.
	Load(r *http.Request, who *identity.Identity, id string) (*record.Record, []byte, error)
	// List is a page of the requests who may see, selected as the API's
	// list query q says (limit when q has none), and the next cursor.
	List(r *http.Request, who *identity.Identity, q url.Values, limit int) ([]*record.Record, string, error)
	// Complete claims request id for who and replays it with auth as its
	// Authorization; the backend's answer is kept in the record.
	Complete(r *http.Request, who *identity.Identity, id, auth string, next Next) error
	// Preview is what request id will change, read through next with auth
	// as the Authorization.
	Preview(r *http.Request, who *identity.Identity, id, auth string, next Next) (*Preview, error)
	// Principal is who as records compare people (Record.Can);
	// IsAdmin whether who is in the admin groups.
	Principal(who *identity.Identity) record.Principal
	IsAdmin(who *identity.Identity) bool
}

// Pages serves what lives under the prefix besides the API and the health
// check: the web console.
type Pages interface {
	ServeHTTP(w http.ResponseWriter, r *http.Request, next Next)
}

// SetPages has the service hand the requests under its prefix that are not
// the API to p.
func (s *Service) SetPages(p Pages) { s.pages = p }

// Act implements Flow.
func (s *Service) Act(r *http.Request, who *identity.Identity, id, action, notes, payloadSHA256 string, next Next) (*record.Record, error) {
	if !utf8.ValidString(notes) || !utf8.ValidString(payloadSHA256) {
		return nil, fail(http.StatusBadRequest, CodeBadRequest, "the form is not UTF-8")
	}
	if utf8.RuneCountInString(notes) > maxNotes {
		return nil, fail(http.StatusBadRequest, CodeBadRequest, "notes are too long")
	}
	return s.perform(r, who, id, action, actionInput{Notes: notes, PayloadSHA256: payloadSHA256}, next)
}

// Load implements Flow.
func (s *Service) Load(r *http.Request, who *identity.Identity, id string) (*record.Record, []byte, error) {
	return s.load(r, who, id)
}

// List implements Flow.
func (s *Service) List(r *http.Request, who *identity.Identity, q url.Values, limit int) ([]*record.Record, string, error) {
	o, err := s.listOptions(q, who)
	if err != nil || o == nil {
		return nil, "", err
	}
	if o.Limit == 0 {
		o.Limit = limit
	}
	recs, next, err := s.store.List(r.Context(), *o)
	return s.ownSiteOnly(recs), next, err
}

// Complete implements Flow.
func (s *Service) Complete(r *http.Request, who *identity.Identity, id, auth string, next Next) error {
	_, err := s.claimAndReplay(&captureWriter{ResponseWriter: &discardWriter{h: http.Header{}}, limit: s.ResultExcerpt}, r, who, id, auth, next)
	return err
}

// Principal implements Flow.
func (s *Service) Principal(who *identity.Identity) record.Principal { return s.principal(who) }

// IsAdmin implements Flow.
func (s *Service) IsAdmin(who *identity.Identity) bool { return s.isAdmin(who) }

// ErrorOf is how the API answers err: its status, contract code and
// message.
func ErrorOf(err error) (status int, code, message string) {
	e := asAPIError(err)
	return e.status, e.code, e.message
}

// StepUpOf reports whether err asks for a fresher or stronger
// authentication (RFC 9470), and what: the most seconds since it
// (max_age, 0 when not asked) and the classes accepted (acr_values,
// space-separated).
func StepUpOf(err error) (maxAge int64, acrValues string, ok bool) {
	e := asAPIError(err)
	if e.code != CodeInsufficientAuthentication {
		return 0, "", false
	}
	maxAge, _ = e.extra["max_age"].(int64)
	acrValues, _ = e.extra["acr_values"].(string)
	return maxAge, acrValues, true
}
