package approvals_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"

	"github.com/approval-gateway/gateway/examples/adminapi"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	jsonpatch "github.com/evanphx/json-patch/v5"
)

const appsPolicy = `package approval

decision := {"action": "require_approval", "policy": "apps", "resource": input.request.path,
	"approvers": [{"group": "app-approvers", "required": 1}]} if input.request.segments[0] == "apps"
`

// previewed parks method /apps/1 with body in front of the example admin
// API, and returns the preview an approver gets, the harness's client to
// the gateway and the request id.
func previewed(t *testing.T, method, body string) (map[string]any, *testkit.Client, string, *approvalstest.Harness) {
	t.Helper()
	h := approvalstest.New(t, testkit.WritePolicy(t, appsPolicy), nil)
	backend := httptest.NewServer(adminapi.New())
	t.Cleanup(backend.Close)
	c := h.Before(backend.URL)
	id := c.Expect(c.Do(method, "/apps/1", h.Token("alice", "it-ops"), body, "Content-Type", "application/json",
		"Approval-Justification", "CHG-7 payroll 1.5"), http.StatusAccepted, "").Str("id")
	p := c.Expect(c.Do("GET", "/.approvals/api/v1/requests/"+id+"/preview", h.Token("bob", "app-approvers"), ""), http.StatusOK, "")
	return p.Body, c, id, h
}

// TestPreviewShowsWhatAPatchWillDo: the preview of a parked PATCH holds
// the target as the backend has it now, the body merged into it (RFC
// 7396: null removes), and the JSON Patch (RFC 6902) from one to the
// other; applied to the current state, the patch gives exactly what the
// backend holds once the request is approved and completed.
func TestPreviewShowsWhatAPatchWillDo(t *testing.T) {
	p, c, id, h := previewed(t, "PATCH", `{"version": "1.5.0", "channel": "beta", "name": null}`)
	current := p["current"].(map[string]any)
	if current["status"] != 200.0 || !reflect.DeepEqual(current["body"], map[string]any{"id": "1", "name": "payroll", "version": "1.4.2"}) {
		t.Fatalf("current %v", current)
	}
	want := map[string]any{"id": "1", "version": "1.5.0", "channel": "beta"}
	if !reflect.DeepEqual(p["proposed"], want) {
		t.Fatalf("proposed %v", p["proposed"])
	}
	patch, _ := json.Marshal(p["patch"])
	cur, _ := json.Marshal(current["body"])
	ops, err := jsonpatch.DecodePatch(patch)
	if err != nil {
		t.Fatalf("the patch %s is not RFC 6902: %v", patch, err)
	}
	applied, err := ops.Apply(cur)
	if err != nil {
		t.Fatal(err)
	}

	c.Expect(c.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "app-approvers"), ""), http.StatusOK, "")
	c.Expect(c.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", h.Token("alice", "it-ops"), ""), http.StatusOK, "")
	after := c.Expect(c.Do("GET", "/apps/1", "", ""), http.StatusOK, "")
	if !jsonpatch.Equal(applied, []byte(after.Raw)) {
		t.Fatalf("current + patch = %s; the backend after completion: %s", applied, after.Raw)
	}
}

// A PATCH sent as application/json-patch+json is applied as RFC 6902
// operations, not merged.
func TestPreviewOfAJSONPatch(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, appsPolicy), nil)
	backend := httptest.NewServer(adminapi.New())
	t.Cleanup(backend.Close)
	c := h.Before(backend.URL)
	id := c.Expect(c.Do("PATCH", "/apps/1", h.Token("alice", "it-ops"), `[{"op": "replace", "path": "/version", "value": "3.0.0"}, {"op": "remove", "path": "/name"}]`,
		"Content-Type", "application/json-patch+json", "Approval-Justification", "CHG-8"), http.StatusAccepted, "").Str("id")
	p := c.Expect(c.Do("GET", "/.approvals/api/v1/requests/"+id+"/preview", h.Token("bob", "app-approvers"), ""), http.StatusOK, "")
	if !reflect.DeepEqual(p.Body["proposed"], map[string]any{"id": "1", "version": "3.0.0"}) {
		t.Fatalf("proposed %v", p.Body["proposed"])
	}
}

// A PUT's proposed state is its body; a DELETE's is null, its patch one
// that removes the whole; a POST has no preview; nobody but the parties
// sees one.
func TestPreviewOfPutDeleteAndPost(t *testing.T) {
	p, c, id, h := previewed(t, "PUT", `{"name": "payroll", "version": "2.0.0"}`)
	if !reflect.DeepEqual(p["proposed"], map[string]any{"name": "payroll", "version": "2.0.0"}) || len(p["patch"].([]any)) == 0 {
		t.Fatalf("PUT: %v", p)
	}
	c.Expect(c.Do("GET", "/.approvals/api/v1/requests/"+id+"/preview", h.Token("mallory", "it-ops"), ""), http.StatusNotFound, "not_found")

	p, _, _, _ = previewed(t, "DELETE", "")
	ops, _ := p["patch"].([]any)
	if p["proposed"] != nil || len(ops) != 1 || ops[0].(map[string]any)["path"] != "" {
		t.Fatalf("DELETE: %v", p)
	}

	h = approvalstest.New(t, testkit.WritePolicy(t, appsPolicy), nil)
	id = h.Park(h.Token("alice", "it-ops"), "POST", "/apps", `{"name": "crm"}`)
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id+"/preview", h.Token("bob", "app-approvers"), ""), http.StatusUnprocessableEntity, "no_preview")
	// With method_override judge, a PUT sent as POST ?_method=PUT is
	// parked; a GET of its target could be another method at a backend
	// that honours _method on any method, on the previewer's token: it is
	// not sent.
	h = approvalstest.New(t, testkit.WritePolicy(t, appsPolicy), func(o *approvalstest.Options) { o.JudgeMethodOverride = true })
	id = h.Park(h.Token("alice", "it-ops"), "POST", "/apps/2?_method=PUT", `{"name": "vpn"}`)
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id+"/preview", h.Token("bob", "app-approvers"), ""), http.StatusUnprocessableEntity, "no_preview")
	if calls := h.Backend.Calls(); len(calls) != 0 {
		t.Fatalf("the backend was called: %+v", calls)
	}
}
