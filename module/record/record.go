package record

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/identity/subject"
)

// Principal is an authenticated caller: who they are and their groups.
type Principal struct {
	Subject string   `json:"subject"`
	Groups  []string `json:"groups"`
	// CaseSensitive keeps case apart in the folded comparison of refusals
	// (CouldBe): for identity providers whose ids differ only by case.
	CaseSensitive bool `json:"-"`
}

// Is reports whether subject is p's own, exactly as the identity provider
// issued it: the test of every grant (who the requester is, who may read,
// cancel or complete a request). OpenID Connect's sub is case-sensitive:
// "Alice" may be another account than "alice".
func (p Principal) Is(subject string) bool {
	return p.Subject == subject
}

// CouldBe reports whether other could name the same person as p: equal
// under the folded key (subject.Key). It is the test of every refusal
// (self-approval, one approval per person), which fails safe.
func (p Principal) CouldBe(other string) bool {
	return p.Subject == other || subject.Key(p.Subject, p.CaseSensitive) == subject.Key(other, p.CaseSensitive)
}

// InGroup reports whether p is a member of group.
func (p Principal) InGroup(group string) bool {
	return slices.Contains(p.Groups, group)
}

// Operation is the stored call: everything needed to replay it except the
// body, which is kept beside the record, and credentials, which are never
// kept.
type Operation struct {
	// Method is the method the backend executes, which the policy judged.
	Method string `json:"method"`
	// WireMethod is the request line's method when a judged method
	// override (a header or _method field, stored with the call) made it
	// differ: the replay sends it, so the backend reads the call exactly
	// as it was judged.
	WireMethod string `json:"wire_method,omitempty"`
	// Path is the normalized path the policy judged; RawPath the escaped
	// path as it was sent and is replayed, byte for byte.
	Path     string `json:"path"`
	RawPath  string `json:"raw_path,omitempty"`
	RawQuery string `json:"raw_query,omitempty"`
	// ForceQuery records a target sent with a bare "?" (an empty query):
	// the replay sends it so, and never adds one that was not sent.
	ForceQuery bool        `json:"force_query,omitempty"`
	Host       string      `json:"host,omitempty"`
	Headers    http.Header `json:"headers,omitempty"`
	BodySize   int         `json:"body_size"`
	// Internal names a target inside the gateway ("policy": a runtime
	// policy change) that the replay goes to instead of the backend.
	Internal string `json:"internal,omitempty"`
}

// Approval is one approver's yes.
type Approval struct {
	Subject       string    `json:"subject"`
	Group         string    `json:"group"`
	Notes         string    `json:"notes,omitempty"`
	PayloadSHA256 string    `json:"payload_sha256"`
	At            time.Time `json:"at"`
	// Eligible lists the required groups the approver was a member of when
	// approving; quorum counting may assign the approval to any of them.
	Eligible []string `json:"eligible_groups,omitempty"`
	// AuthTime, ACR and AMR are the approver's authentication as the
	// token given with the approval stated it (OpenID Connect claims).
	AuthTime *time.Time `json:"auth_time,omitempty"`
	ACR      string     `json:"acr,omitempty"`
	AMR      []string   `json:"amr,omitempty"`
}

// AuthRequirement is how recently and how strongly an approver must have
// authenticated to approve or reject (RFC 9470 step-up): a token whose
// auth_time is older than MaxAge, whose acr is not one of ACRValues, or
// whose amr lacks one of AMR falls short.
type AuthRequirement struct {
	MaxAge    Duration `json:"max_age,omitempty"`
	ACRValues []string `json:"acr_values,omitempty"`
	AMR       []string `json:"amr,omitempty"`
}

// Requirement is one entry of a decision's approvers: Required approvals
// from distinct members of Group. All requirements of a request must be met.
type Requirement struct {
	Group     string     `json:"group"`
	Required  int        `json:"required"`
	Approvals []Approval `json:"approvals"`
	Remaining int        `json:"remaining"`
}

// Event is one entry of a request's history.
type Event struct {
	At     time.Time `json:"at"`
	Actor  string    `json:"actor"`
	Action string    `json:"action"`
	From   Status    `json:"from,omitempty"`
	To     Status    `json:"to"`
	Notes  string    `json:"notes,omitempty"`
}

// Result is what the backend answered to the replay, or why there was none.
type Result struct {
	Status      int         `json:"status,omitempty"`
	Headers     http.Header `json:"headers,omitempty"`
	Body        string      `json:"body_excerpt,omitempty"`
	Truncated   bool        `json:"body_truncated,omitempty"`
	Error       string      `json:"error,omitempty"`
	CompletedAt time.Time   `json:"completed_at"`
}

// Record is a parked request and everything that happened to it.
type Record struct {
	ID            string    `json:"id"`
	Status        Status    `json:"status"`
	Requester     Principal `json:"requester"`
	Justification string    `json:"justification"`
	Policy        string    `json:"policy"`
	Reason        string    `json:"reason,omitempty"`
	Resource      string    `json:"resource"`
	// Site is the site that parked the request (the handler's site name;
	// empty in records from before sites were, which belong to the
	// default site). Every other site treats the request as absent.
	Site          string        `json:"site,omitempty"`
	Operation     Operation     `json:"operation"`
	PayloadSHA256 string        `json:"payload_sha256"`
	Approvers     []Requirement `json:"approvers"`
	// ApproverAuth, when set, is the authentication each approver's token
	// must show (the decision's approver_auth).
	ApproverAuth *AuthRequirement `json:"approver_auth,omitempty"`
	// Warnings say, at park, what may keep the request from its quorum
	// (a group with fewer members seen than it must approve).
	Warnings  []string   `json:"warnings,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	UpdatedAt time.Time  `json:"updated_at"`
	ExpiresAt time.Time  `json:"expires_at"`
	ClaimedAt *time.Time `json:"claimed_at,omitempty"`
	// AutoComplete replays the request inside the approval that meets the
	// quorum, instead of waiting for the requester.
	AutoComplete bool `json:"auto_complete,omitempty"`
	// CompletionExpiry is the time allowed from approval to completion.
	CompletionExpiry Duration `json:"completion_expiry"`
	History          []Event  `json:"history"`
	Result           *Result  `json:"result,omitempty"`
}

// AuditEvent is one entry of the global audit log: every history event of
// every request, written in the same transaction as the change it records.
type AuditEvent struct {
	ID        string    `json:"id"`
	At        time.Time `json:"at"`
	Actor     string    `json:"actor"`
	Action    string    `json:"action"`
	RequestID string    `json:"request_id"`
	From      Status    `json:"from,omitempty"`
	To        Status    `json:"to"`
	Notes     string    `json:"notes,omitempty"`
	ClientIP  string    `json:"client_ip,omitempty"`
	Policy    string    `json:"policy,omitempty"`
	Resource  string    `json:"resource,omitempty"`
	Requester string    `json:"requester,omitempty"`
	// Groups are the request's approver groups: who may see the event.
	Groups []string `json:"approver_groups,omitempty"`
	// Seq, PrevHash and Hash are the event's place in the audit chain
	// (package auditchain): its number, the hash of the event before it
	// and its own.
	Seq      int64  `json:"seq,omitempty"`
	PrevHash string `json:"prev_hash,omitempty"`
	Hash     string `json:"hash,omitempty"`
}

// Duration is a time.Duration that reads and writes as a string ("72h").
type Duration time.Duration

// MarshalJSON writes the duration as a Go duration string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + time.Duration(d).String() + `"`), nil
}

// UnmarshalJSON reads a Go duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// PayloadHash is the SHA-256, in hex, of the canonical form of a stored
// call: method, host, path, query, headers (sorted by name, values in
// order) and body, each part length-prefixed so no two calls share a form;
// then the wire method and raw path when they (or a bare "?") are set, and
// the bare "?" when it is. Approvals are bound to it.
func PayloadHash(op Operation, body []byte) string {
	h := sha256.New()
	part := func(s string) {
		var n [8]byte
		l := uint64(len(s))
		for i := range n {
			n[i] = byte(l >> (8 * i))
		}
		h.Write(n[:])
		h.Write([]byte(s))
	}
	part(op.Method)
	part(op.Host)
	part(op.Path)
	part(op.RawQuery)
	names := make([]string, 0, len(op.Headers))
	for k := range op.Headers {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		part(strings.ToLower(k))
		part(strings.Join(op.Headers[k], "\x00"))
	}
	part(string(body))
	if op.WireMethod != "" || op.RawPath != "" || op.ForceQuery {
		part(op.WireMethod)
		part(op.RawPath)
	}
	if op.ForceQuery {
		part("?")
	}
	return hex.EncodeToString(h.Sum(nil))
}

// Target is the request target the replay sends: the raw path (the path,
// for calls stored before raw paths were) and the raw query, or the bare
// "?" the call was sent with.
func (o Operation) Target() string {
	t := o.RawPath
	if t == "" {
		t = o.Path
	}
	if o.RawQuery != "" || o.ForceQuery {
		t += "?" + o.RawQuery
	}
	return t
}

// SentMethod is the method the replay sends: the wire method of a judged
// override, else the method.
func (o Operation) SentMethod() string {
	if o.WireMethod != "" {
		return o.WireMethod
	}
	return o.Method
}
