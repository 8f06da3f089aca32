package console

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
)

// waiting counts the requests the user could approve now, from the
// gateway's view of the open requests (no store read per page); a list
// query while that view is not ready.
func (c *Console) waiting(r *http.Request, who *identity.Identity) int {
	if len(who.Groups) == 0 {
		return 0
	}
	me, n := c.flow.Principal(who), 0
	if open := c.store.Open(); open.Ready() {
		return open.Waiting(me.Subject, me.Groups)
	}
	recs, _, err := c.flow.List(r, who, url.Values{"view": {"received"}, "status": {string(record.NeedsApproval)}}, 100)
	if err != nil {
		return 0
	}
	for _, rec := range recs {
		if rec.Can(record.ActionApprove, me) == nil {
			n++
		}
	}
	return n
}

// list is a page of requests: mine, received, or (admins) all.
func (c *Console) list(w http.ResponseWriter, r *http.Request, v *visit) {
	p, q := v.page, r.URL.Query()
	p.View = q.Get("view")
	if p.View == "" {
		p.View = "mine"
	}
	p.Heading = map[string]string{"mine": "My requests", "received": "Received requests", "all": "All requests"}[p.View]
	p.Title = p.Heading
	p.Statuses = record.Statuses
	p.Filter.Status, p.Filter.Policy, p.Filter.Requester = q.Get("status"), q.Get("policy"), q.Get("requester")
	var err error
	p.Requests, p.Next, err = c.flow.List(r, p.User, q, 25)
	if err != nil {
		status, _, _ := approvals.ErrorOf(err)
		p.Heading, p.Message = "Requests", c.explain(err)
		c.render(w, r, status, "list", p)
		return
	}
	if p.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", p.Next)
		p.NextURL = c.prefix + "/requests?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "list", p)
}

// foldAt is the body size past which the page folds it.
const foldAt = 4 << 10

// request is the page of one request, with the actions its record allows
// the person.
func (c *Console) request(w http.ResponseWriter, r *http.Request, v *visit) {
	p, id := v.page, r.PathValue("id")
	rec, body, err := c.flow.Load(r, p.User, id)
	if err != nil {
		status, code, _ := approvals.ErrorOf(err)
		c.fail(w, r, p, status, code)
		return
	}
	p.Request, p.Title, p.BodySize = rec, rec.Operation.Method+" "+rec.Operation.Target(), len(body)
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		p.Body = pretty.String()
	} else {
		p.Body = string(bytes.ToValidUTF8(body, []byte("\uFFFD")))
	}
	p.BodyFolded = len(body) > foldAt
	c.preview(r, p, v)
	if msg := r.URL.Query().Get("done"); msg != "" {
		p.Done = map[string]string{"approve": "Your approval is recorded.", "reject": "The request is rejected; the requester sees your notes.",
			"cancel": "The request is canceled.", "complete": "The call was sent to the backend; its answer is below."}[msg]
	}
	if code := r.URL.Query().Get("error"); code != "" {
		p.Message = c.explainCode(code, rec.Status)
	}
	// The buttons are the actions the record allows this person; the
	// approve form is also shown to a requester who is an approver, who
	// is then told why not.
	me := c.flow.Principal(p.User)
	err = rec.Can(record.ActionApprove, me)
	var re *record.Error
	p.CanApprove = err == nil || (errors.As(err, &re) && re.Code == record.CodeSelfApproval && rec.IsApprover(me) &&
		record.Allowed(record.ActionApprove, rec.Status))
	p.CanComplete = rec.Can(record.ActionClaim, me) == nil
	p.CanCancel = rec.Can(record.ActionCancel, me) == nil
	p.Actions = p.CanApprove || p.CanComplete || p.CanCancel
	c.render(w, r, http.StatusOK, "request", p)
}

// preview puts on the page what an open PUT, PATCH or DELETE will change
// in its target, read now from the backend as the person.
func (c *Console) preview(r *http.Request, p *page, v *visit) {
	rec := p.Request
	switch rec.Operation.Method {
	case http.MethodPut, http.MethodPatch, http.MethodDelete:
	default:
		return
	}
	if rec.Status.Terminal() || rec.Status == record.Completing {
		return
	}
	auth := r.Header.Get("Authorization")
	if v.sess != nil && v.sess.Token != "" {
		auth = "Bearer " + v.sess.Token
	}
	next, _ := r.Context().Value(nextKey{}).(approvals.Next)
	pv, err := c.flow.Preview(r, p.User, rec.ID, auth, next)
	switch {
	case err != nil:
		_, _, msg := approvals.ErrorOf(err)
		p.PreviewNote = "No preview: " + msg
	case pv.Current.Status/100 != 2:
		p.PreviewNote = fmt.Sprintf("No preview: reading the target now, the backend answers %d.", pv.Current.Status)
	case len(pv.Patch) == 0:
		p.PreviewNote = "The target already is as this request would leave it."
	default:
		p.Diff = pv.Rows()
	}
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, p *page, status int, code string) {
	p.Title, p.Heading = "Not possible", "That did not work"
	if status == http.StatusNotFound {
		p.Heading = "No such page or request"
	}
	p.Message = c.explainCode(code, "")
	c.render(w, r, status, "error", p)
}

func (c *Console) explain(err error) string {
	_, code, message := approvals.ErrorOf(err)
	if code == approvals.CodeBadRequest {
		return message
	}
	return c.explainCode(code, "")
}

// explainCode puts an error code in words a person understands.
func (c *Console) explainCode(code string, st record.Status) string {
	switch code {
	case record.CodeSelfApproval:
		return "You can't approve or reject your own request: another approver has to."
	case "step_up_lost":
		return "Your decision was not carried out: the sign-in took too long or was started elsewhere. Decide again."
	case approvals.CodeInsufficientAuthentication:
		return "This request asks you to have signed in more recently, or more strongly, before you decide: sign in again, then try again."
	case record.CodeNotAnApprover:
		return "You aren't in a group that approves this request."
	case record.CodeNotTheRequester:
		return "Only the person who made the request can do that."
	case record.CodeInvalidTransition:
		if st != "" {
			return fmt.Sprintf("This request is %s now, so that can't be done any more.", strings.ReplaceAll(string(st), "_", " "))
		}
		return "The request has moved on, so that can't be done any more."
	case record.CodeAlreadyApproved:
		return "You have already approved this request."
	case record.CodeRequirementMet:
		return "The approvals your groups can give are already in; the request waits for other groups."
	case record.CodeNotesRequired:
		return "Please write a note saying why."
	case record.CodeStalePayload:
		return "The request is not the one you looked at. Reload the page and check it again."
	case "csrf":
		return "This form expired or came from another site. Reload the page and try again."
	case approvals.CodeStoreUnavailable:
		return "The approval store can't be reached right now. Try again in a moment."
	case approvals.CodeNotFound:
		return "There is no such request, or you can't see it."
	case approvals.CodeForbidden:
		return "You aren't allowed to see this."
	case approvals.CodeUnauthenticated:
		return "Your identity did not come with the request: sign in through your organisation's portal first."
	case approvals.CodeReplayFailed:
		return "The backend could not be reached; the request is failed and will not be sent again."
	}
	return "Something went wrong. Try again, or ask an administrator."
}

func relativeTime(t, now time.Time) string {
	d := t.Sub(now)
	future := d > 0
	if d < 0 {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
