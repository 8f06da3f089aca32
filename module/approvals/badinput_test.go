package approvals_test

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	clientv3 "go.etcd.io/etcd/client/v3"
)

func stored(h *approvalstest.Harness) int64 {
	h.T.Helper()
	resp, err := h.Cli.Get(context.Background(), "/approvals/requests/", clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		h.T.Fatal(err)
	}
	return resp.Count
}

// TestBadInputEverywhere: hostile input gets a clear 4xx and nothing is
// stored half-way; a binary body is replayed byte for byte.
func TestBadInputEverywhere(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "deny", "policy": "json", "reason": "the body is not JSON"} if {
	input.request.body == null
	input.request.path == "/json-only"
} else := {
	"action": "require_approval", "policy": "p", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}],
}
`), nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")

	// A malformed JSON body is refused: judged as null it could pass a
	// policy that the backend's parser would not. A body of a type the
	// gateway does not parse is null, and the policy decides.
	h.Expect(h.Do("POST", "/json-only", alice, `{"a":`, "Content-Type", "application/json"), http.StatusBadRequest, "invalid_body")
	h.Expect(h.Do("POST", "/json-only", alice, `{"a":`, "Content-Type", "text/plain"), http.StatusForbidden, approvals.CodeDenied)

	// Invalid UTF-8 in the justification.
	h.Expect(h.Do("POST", "/x", alice, "", "Approval-Justification", "bad \xff\xfe text"), http.StatusBadRequest, approvals.CodeBadRequest)
	h.Expect(h.Do("POST", "/x", alice, ""), http.StatusPreconditionRequired, approvals.CodeJustificationRequired)

	// A huge number of headers is refused before it reaches the gateway.
	req, _ := http.NewRequest("POST", h.GW.URL+"/x", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Approval-Justification", "j")
	for i := range 20000 {
		req.Header.Set(fmt.Sprintf("X-Flood-%d", i), strings.Repeat("v", 40))
	}
	if resp, err := http.DefaultClient.Do(req); err == nil {
		resp.Body.Close()
		if resp.StatusCode < 400 || resp.StatusCode >= 500 {
			t.Fatalf("a header flood answered %d", resp.StatusCode)
		}
	}
	if n := stored(h); n != 0 {
		t.Fatalf("bad input stored %d requests", n)
	}

	// Unknown id formats and hostile cursors.
	for _, id := range []string{"..", "%2e%2e%2fsecrets", "01a19bb3-9500-7000-83ec-809bb63b654f%00", strings.Repeat("a", 5000), "../../audit"} {
		res := h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, "")
		if res.Status != http.StatusNotFound && res.Status != http.StatusBadRequest {
			t.Fatalf("id %q answered %d", id, res.Status)
		}
		res = h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, "")
		if res.Status != http.StatusNotFound && res.Status != http.StatusBadRequest {
			t.Fatalf("approve %q answered %d", id, res.Status)
		}
	}
	for _, c := range []string{"' OR 1=1 --", "../../", "\x00", strings.Repeat("f", 36), "01a19bb3-9500-7000-83ec-809bb63b654"} {
		h.Expect(h.Do("GET", "/.approvals/api/v1/requests?cursor="+url.QueryEscape(c), alice, ""), http.StatusBadRequest, approvals.CodeBadRequest)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/x/approve", bob, `{"notes": "\udc00"}`), http.StatusNotFound, approvals.CodeNotFound)

	// A binary body goes to the backend byte for byte.
	binary := make([]byte, 256*4)
	for i := range binary {
		binary[i] = byte(i)
	}
	res := h.Expect(h.Do("PUT", "/blob", alice, string(binary), "Approval-Justification", "upload", "Content-Type", "application/octet-stream"), http.StatusAccepted, "")
	id := res.Str("id")
	got := h.Record(bob, id)
	if got.Str("body_base64") == "" {
		t.Fatalf("a binary body is not shown as base64: %s", got.Raw[:200])
	}
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	calls := h.Backend.Mutating()
	if len(calls) != 1 || !bytes.Equal([]byte(calls[0].Body), binary) {
		t.Fatalf("the replayed body differs (%d calls)", len(calls))
	}
}
