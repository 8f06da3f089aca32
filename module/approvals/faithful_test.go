package approvals_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
)

// faithfulPolicy parks what changes roles and devices, and lets other
// calls pass; it reads the method, path and body, so each is judged as the
// backend will execute it.
const faithfulPolicy = `package approval

decision := {"action": "require_approval", "policy": "rbac", "resource": "roles",
	"approvers": [{"group": "approvers", "required": 1}],
	"reason": sprintf("%s %s", [input.request.method, input.request.raw_path])} if {
	startswith(input.request.path, "/roles")
} else := {"action": "deny", "policy": "devices", "reason": "wiping needs the wipe action"} if {
	startswith(input.request.path, "/devices")
	input.request.body.wiped == true
} else := {"action": "deny", "policy": "rbac", "reason": "no deleting roles"} if {
	input.request.method == "DELETE"
} else := {"action": "require_approval", "policy": "apps", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}]} if {
	startswith(input.request.path, "/apps")
} else := {"action": "allow", "policy": "open"}
`

// TestMethodOverrides: by default a call asking for another method is
// refused on any method; with JudgeMethodOverride the policy judges the
// method asked for, and the call is stored and replayed as it was sent, so
// it is never parked as one method and executed as another.
func TestMethodOverrides(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), nil)
	alice := h.Token("alice")
	for _, hdr := range []string{"X-HTTP-Method-Override", "X-HTTP-Method", "X-Method-Override", "X_HTTP_Method_Override"} {
		h.Expect(h.Do("POST", "/devices/2", alice, `{"wiped":true}`, hdr, "PATCH", "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
		h.Expect(h.Do("GET", "/devices/2", "", "", hdr, "DELETE"), http.StatusBadRequest, "method_override")
	}
	h.Expect(h.Do("POST", "/open?_method=DELETE", alice, `{}`), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("GET", "/open?%5Fmethod=DELETE", "", ""), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("POST", "/open", alice, "name=x&_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("delete", "/open", alice, ""), http.StatusBadRequest, "invalid_method")
	// In a body: a JSON member, a form field on a read, a body with no type.
	h.Expect(h.Do("POST", "/open", alice, `{"_method":"DELETE"}`, "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("GET", "/roles/2", "", "_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusBadRequest, "method_override")
	h.Expect(h.Do("OPTIONS", "/roles/2", "", `{"_method":"DELETE"}`, "Content-Type", "application/json"), http.StatusBadRequest, "method_override")
	req, _ := http.NewRequest("POST", h.GW.URL+"/open", strings.NewReader("_method=DELETE"))
	req.Header.Set("Authorization", "Bearer "+alice)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("a _method in a body with no type: %v %v", resp.StatusCode, err)
	}
	if n := len(h.Backend.Calls()); n != 0 {
		t.Fatalf("%d overridden calls reached the backend", n)
	}

	j := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), func(o *approvalstest.Options) { o.JudgeMethodOverride = true })
	alice, bob := j.Token("alice"), j.Token("bob", "approvers")
	// Judged as the PATCH it is: the wipe is denied.
	j.Expect(j.Do("POST", "/devices/2", alice, `{"wiped":true}`, "X-HTTP-Method-Override", "PATCH", "Content-Type", "application/json"), http.StatusForbidden, "denied")
	j.Expect(j.Do("POST", "/open", alice, "name=x&_method=DELETE", "Content-Type", "application/x-www-form-urlencoded"), http.StatusForbidden, "denied")
	j.Expect(j.Do("POST", "/open?_method=PUT", alice, "", "X-HTTP-Method", "DELETE"), http.StatusBadRequest, "method_override")
	// Judged on a POST only, and only as a method everyone knows.
	j.Expect(j.Do("DELETE", "/devices/1", alice, "", "X-HTTP-Method-Override", "PATCH"), http.StatusBadRequest, "method_override")
	j.Expect(j.Do("POST", "/devices/1", alice, "", "X-HTTP-Method-Override", "FOO"), http.StatusBadRequest, "method_override")
	// Parked as the DELETE it is, and replayed as sent: POST with the
	// override, so the backend executes the DELETE that was approved.
	rec := j.Expect(j.Do("POST", "/roles/2", alice, "", "X-HTTP-Method-Override", "DELETE", "Approval-Justification", "j"), http.StatusAccepted, "")
	op := rec.Body["operation"].(map[string]any)
	if op["method"] != "DELETE" || op["wire_method"] != "POST" || rec.Str("reason") != "DELETE /roles/2" {
		t.Fatalf("parked as %v (%s)", op, rec.Str("reason"))
	}
	j.Approve(bob, rec.Str("id"))
	j.Expect(j.Do("POST", "/.approvals/api/v1/requests/"+rec.Str("id")+"/complete", alice, ""), http.StatusCreated, "")
	calls := j.Backend.Mutating()
	if len(calls) != 1 || calls[0].Method != "POST" || calls[0].Header.Get("X-Http-Method-Override") != "DELETE" {
		t.Fatalf("the backend saw %+v", calls)
	}
}

// TestRawTargetIsJudgedAndReplayed: ambiguous paths are refused by
// default; when judged, the policy sees the normalized path beside the raw
// one, and the replay sends the raw target byte for byte.
func TestRawTargetIsJudgedAndReplayed(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), nil)
	alice := h.Token("alice")
	for _, p := range []string{"/apps/2%2Fx", "/apps/./2", "/open/../roles/2", "/open/%2e%2e/roles/2", "/apps/2%5Cx", "/apps/2;x=1", "/apps/2%00"} {
		h.Expect(h.Do("PUT", p, alice, `{}`, "Approval-Justification", "j"), http.StatusBadRequest, "ambiguous_path")
	}
	h.Expect(h.Do("PUT", "/apps/2?a=%zz", alice, `{}`, "Approval-Justification", "j"), http.StatusBadRequest, "invalid_query")
	// Normalized for the policy: escapes of letters, double slashes.
	h.Expect(h.Do("DELETE", "//r%6Fles/2", alice, "", "Approval-Justification", "j"), http.StatusAccepted, "")
	if n := len(h.Backend.Calls()); n != 0 {
		t.Fatalf("%d calls reached the backend", n)
	}

	j := approvalstest.New(t, testkit.WritePolicy(t, faithfulPolicy), func(o *approvalstest.Options) { o.JudgeAmbiguousPaths = true })
	alice, bob := j.Token("alice"), j.Token("bob", "approvers")
	j.Expect(j.Do("PUT", "/open/../roles/2", alice, "{}", "Approval-Justification", "j"), http.StatusAccepted, "")
	rec := j.Expect(j.Do("PUT", "/apps/2%2Fx?v=a%2Fb&v=2", alice, `{"version":"2"}`, "Approval-Justification", "j", "Content-Type", "application/json"), http.StatusAccepted, "")
	op := rec.Body["operation"].(map[string]any)
	if op["path"] != "/apps/2%2Fx" || op["raw_path"] != "/apps/2%2Fx" || op["raw_query"] != "v=a%2Fb&v=2" {
		t.Fatalf("stored %v", op)
	}
	j.Approve(bob, rec.Str("id"))
	j.Expect(j.Do("POST", "/.approvals/api/v1/requests/"+rec.Str("id")+"/complete", alice, ""), http.StatusOK, "")
	calls := j.Backend.Mutating()
	if len(calls) != 1 || calls[0].URI != "/apps/2%2Fx?v=a%2Fb&v=2" || !strings.Contains(calls[0].Body, `"version":"2"`) {
		t.Fatalf("the replay sent %+v", calls)
	}
}
