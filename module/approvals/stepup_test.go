package approvals_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/golang-jwt/jwt/v5"
)

const stepUpPolicy = `package approval

decision := {"action": "require_approval", "policy": "rbac", "resource": input.request.path,
	"approvers": [{"group": "rbac-approvers", "required": 1}],
	"approver_auth": {"max_age": "15m", "acr_values": ["urn:example:mfa"], "amr": ["mfa"]}}
`

// TestStepUpForApprovers: a decision's approver_auth asks approvers for a
// recent, strong authentication (RFC 9470). An approve or reject whose
// token has no auth_time, an old one, another acr or lacks an amr is 401
// insufficient_user_authentication with the challenge naming max_age and
// acr_values, and changes nothing; one that meets it is recorded with the
// authentication it was given with. Someone who may not approve at all is
// told so first.
func TestStepUpForApprovers(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, stepUpPolicy), nil)
	id := h.Park(h.Token("alice", "it-ops"), "PUT", "/roles/helpdesk", `{"permissions": ["devices.wipe"]}`)
	now := h.Clock.Now()
	token := func(sub string, claims jwt.MapClaims) string {
		claims["sub"], claims["groups"] = sub, []string{"rbac-approvers"}
		return h.TokenWith(claims)
	}
	fresh, strong := now.Add(-5*time.Minute).Unix(), []string{"pwd", "mfa"}
	for _, c := range []struct {
		name   string
		claims jwt.MapClaims
		why    string
	}{
		{"no auth_time", jwt.MapClaims{"acr": "urn:example:mfa", "amr": strong}, "does not say when you authenticated"},
		{"an old authentication", jwt.MapClaims{"auth_time": now.Add(-20 * time.Minute).Unix(), "acr": "urn:example:mfa", "amr": strong}, "you authenticated 20m0s ago"},
		{"another acr", jwt.MapClaims{"auth_time": fresh, "acr": "urn:example:pwd", "amr": strong}, "(acr) is urn:example:pwd"},
		{"no mfa", jwt.MapClaims{"auth_time": fresh, "acr": "urn:example:mfa", "amr": []string{"pwd"}}, "(amr) do not include mfa"},
	} {
		for _, action := range []string{"approve", "reject"} {
			a := h.Do("POST", "/.approvals/api/v1/requests/"+id+"/"+action, token("bob", c.claims), `{"notes": "looks right"}`, "Content-Type", "application/json")
			h.Expect(a, http.StatusUnauthorized, "insufficient_user_authentication")
			wa := a.Header.Get("WWW-Authenticate")
			if !strings.HasPrefix(wa, `Bearer error="insufficient_user_authentication", error_description="`) ||
				!strings.HasSuffix(wa, `, max_age=900, acr_values="urn:example:mfa"`) || !strings.Contains(wa, c.why) {
				t.Errorf("%s, %s: WWW-Authenticate %s", c.name, action, wa)
			}
		}
	}
	rec := h.Record(h.Token("alice", "it-ops"), id)
	if rec.Str("status") != "needs_approval" || approvalstest.HistoryActions(rec) != "alice:parked" {
		t.Fatalf("a refused step-up changed the request: %s", rec.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("mallory", "it-ops"), ""), http.StatusNotFound, "not_found")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.TokenWith(jwt.MapClaims{"sub": "alice", "groups": []string{"rbac-approvers"}}), ""),
		http.StatusForbidden, "self_approval")

	ok := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve",
		token("bob", jwt.MapClaims{"auth_time": fresh, "acr": "urn:example:mfa", "amr": strong}), ""), http.StatusOK, "")
	appr := ok.Body["approvers"].([]any)[0].(map[string]any)["approvals"].([]any)[0].(map[string]any)
	if ok.Str("status") != "approved" || appr["auth_time"] != time.Unix(fresh, 0).UTC().Format(time.RFC3339) || appr["acr"] != "urn:example:mfa" ||
		len(appr["amr"].([]any)) != 2 {
		t.Fatalf("the approval: %v", appr)
	}
	if ra, _ := ok.Body["approver_auth"].(map[string]any); ra["max_age"] != "15m0s" {
		t.Fatalf("the record's approver_auth: %v", ok.Body["approver_auth"])
	}
}
