package approvals_test

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
)

// TestAuthorizationMatrix tries every action with every role on requests
// in every status, against one table of who may do what.
func TestAuthorizationMatrix(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	tokens := map[string]string{
		"requester":      h.Token("alice", "ops"),
		"approver":       h.Token("bob", "approvers"),
		"other approver": h.Token("dave", "security"),
		"admin":          h.Token("audrey", "auditors"),
		"stranger":       h.Token("eve", "sales"),
		"no token":       "",
	}
	roles := []string{"requester", "approver", "other approver", "admin", "stranger", "no token"}
	actions := []string{"get", "approve", "reject", "cancel", "complete"}
	statuses := []record.Status{record.NeedsApproval, record.Approved, record.Completing, record.Completed,
		record.Rejected, record.Canceled, record.Expired, record.Failed}

	// want is the table: the answer (status and code) of action by role on
	// a request in status st.
	want := func(role, action string, st record.Status) (int, string) {
		switch role {
		case "no token":
			return http.StatusUnauthorized, approvals.CodeUnauthenticated
		case "stranger", "other approver":
			return http.StatusNotFound, approvals.CodeNotFound // existence not revealed
		}
		if action == "get" {
			return http.StatusOK, ""
		}
		switch action {
		case "approve", "reject":
			switch role {
			case "requester":
				return http.StatusForbidden, record.CodeSelfApproval
			case "admin":
				return http.StatusForbidden, record.CodeNotAnApprover
			}
			if st == record.NeedsApproval {
				return http.StatusOK, ""
			}
		case "cancel":
			if role != "requester" {
				return http.StatusForbidden, record.CodeNotTheRequester
			}
			if st == record.NeedsApproval || st == record.Approved {
				return http.StatusOK, ""
			}
		case "complete":
			if role != "requester" {
				return http.StatusForbidden, record.CodeNotTheRequester
			}
			if st == record.Approved {
				return http.StatusOK, ""
			}
		}
		return http.StatusConflict, record.CodeInvalidTransition
	}

	n := 0
	// inStatus parks a fresh request and brings it to st.
	inStatus := func(st record.Status) (string, string) {
		n++
		secret := fmt.Sprintf("justification-%d", n)
		id := h.Expect(h.Do("DELETE", fmt.Sprintf("/m/%d", n), tokens["requester"], "", "Approval-Justification", secret), http.StatusAccepted, "").Str("id")
		mutate := func(fn func(*record.Record) error) {
			if _, err := h.Opts.Store.Mutate(context.Background(), id, "", fn); err != nil {
				t.Fatal(err)
			}
		}
		alice := record.Principal{Subject: "alice"}
		switch st {
		case record.Approved, record.Completing, record.Completed, record.Failed:
			h.Approve(tokens["approver"], id)
		case record.Rejected:
			h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", tokens["approver"], `{"notes":"no"}`, "Content-Type", "application/json"), http.StatusOK, "")
		case record.Canceled:
			h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", tokens["requester"], ""), http.StatusOK, "")
		case record.Expired:
			mutate(func(r *record.Record) error { return r.Expire(h.Clock.Now()) })
		}
		switch st {
		case record.Completing, record.Failed:
			mutate(func(r *record.Record) error { return r.Claim(alice, h.Clock.Now()) })
		case record.Completed:
			h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", tokens["requester"], ""), http.StatusOK, "")
		}
		if st == record.Failed {
			mutate(func(r *record.Record) error { return r.Fail(record.Result{Error: "x"}, h.Clock.Now()) })
		}
		return id, secret
	}

	for _, st := range statuses {
		for _, role := range roles {
			for _, action := range actions {
				t.Run(fmt.Sprintf("%s/%s/%s", st, role, action), func(t *testing.T) {
					id, secret := inStatus(st)
					var res testkit.Answer
					if action == "get" {
						res = h.Do("GET", "/.approvals/api/v1/requests/"+id, tokens[role], "")
					} else {
						res = h.Do("POST", "/.approvals/api/v1/requests/"+id+"/"+action, tokens[role], `{"notes":"n"}`, "Content-Type", "application/json")
					}
					status, code := want(role, action, st)
					if res.Status != status || res.Code() != code {
						t.Fatalf("got %d %q, want %d %q: %s", res.Status, res.Code(), status, code, res.Raw)
					}
					if status >= 400 && strings.Contains(res.Raw, secret) {
						t.Fatalf("a refusal shows the request: %s", res.Raw)
					}
				})
			}
		}
	}
	// Lists never show a stranger what is not theirs.
	for _, view := range []string{"mine", "received"} {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view="+view, tokens["stranger"], ""), http.StatusOK, "")
		if len(res.Body["requests"].([]any)) != 0 {
			t.Fatalf("view=%s shows a stranger requests", view)
		}
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=all", tokens["approver"], ""), http.StatusForbidden, approvals.CodeForbidden)
	h.Expect(h.Do("GET", "/.approvals/api/v1/audit", tokens["requester"], ""), http.StatusForbidden, approvals.CodeForbidden)
}
