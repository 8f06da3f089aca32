package approvals_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
)

func TestWholeFlow(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice", "ops")
	bob := h.Token("bob", "approvers")
	eve := h.Token("eve", "sales")

	// Reads pass untouched, without a token.
	h.Expect(h.Do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.Backend.Calls()) != 1 {
		t.Fatal("read did not reach the backend")
	}

	// No token, bad token.
	res := h.Expect(h.Do("DELETE", "/apps/42", "", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	if res.Header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", res.Header.Get("WWW-Authenticate"))
	}
	res = h.Expect(h.Do("DELETE", "/apps/42", "garbage", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	if !strings.HasPrefix(res.Header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatal("no WWW-Authenticate on an invalid token")
	}

	// No justification.
	res = h.Expect(h.Do("DELETE", "/apps/42", alice, ""), http.StatusPreconditionRequired, approvals.CodeJustificationRequired)
	if !strings.Contains(res.Raw, "Approval-Justification") {
		t.Fatalf("428 does not name the header: %s", res.Raw)
	}

	// Parked.
	res = h.Expect(h.Do("PUT", "/apps/42?force=1", alice, `{"name":"payroll"}`,
		"Approval-Justification", "CHG-42 rename", "Content-Type", "application/json", "Cookie", "session=s3cret"),
		http.StatusAccepted, "")
	id := res.Str("id")
	if res.Header.Get("Location") != "/.approvals/api/v1/requests/"+id {
		t.Fatalf("Location %q", res.Header.Get("Location"))
	}
	if res.Str("status") != "needs_approval" || res.Str("justification") != "CHG-42 rename" || res.Str("resource") != "apps/42" || res.Str("policy") != "default" {
		t.Fatalf("record %s", res.Raw)
	}
	if strings.Contains(res.Raw, alice) || strings.Contains(res.Raw, "s3cret") {
		t.Fatal("the record holds credentials")
	}
	if n := len(h.Backend.Mutating()); n != 0 {
		t.Fatalf("backend saw %d mutating calls before approval", n)
	}

	// One pending request per resource.
	res = h.Expect(h.Do("PUT", "/apps/42", alice, `{}`, "Approval-Justification", "again"), http.StatusConflict, approvals.CodePendingExists)
	if res.Body["error"].(map[string]any)["request_id"] != id {
		t.Fatalf("409 does not name the pending request: %s", res.Raw)
	}

	// Who may see and act.
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, eve, ""), http.StatusNotFound, approvals.CodeNotFound)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", eve, ""), http.StatusNotFound, approvals.CodeNotFound)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", alice, ""), http.StatusForbidden, record.CodeSelfApproval)
	aliceApprover := h.Token("alice", "approvers", "ops")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", aliceApprover, ""), http.StatusForbidden, record.CodeSelfApproval)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	admin := h.Token("audrey", "auditors")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", admin, ""), http.StatusForbidden, record.CodeNotAnApprover)

	// The approver sees the body and the payload hash.
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, bob, ""), http.StatusOK, "")
	if res.Str("body") != `{"name":"payroll"}` || res.Header.Get("ETag") != `"`+res.Str("payload_sha256")+`"` {
		t.Fatalf("GET: %s etag %s", res.Raw, res.Header.Get("ETag"))
	}
	hash := res.Str("payload_sha256")

	// Approve, bound to the payload.
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"ok"}`, "If-Match", `"`+strings.Repeat("0", 64)+`"`),
		http.StatusConflict, record.CodeStalePayload)
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"looks right"}`, "If-Match", `"`+hash+`"`), http.StatusOK, "")
	if res.Str("status") != "approved" {
		t.Fatalf("after approve: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", bob, ""), http.StatusForbidden, record.CodeNotTheRequester)
	if n := len(h.Backend.Mutating()); n != 0 {
		t.Fatalf("backend saw %d mutating calls before complete", n)
	}

	// Complete with a fresh token: the backend's own answer comes back.
	fresh := h.Token("alice", "ops")
	if fresh == alice {
		t.Fatal("tokens are not distinct")
	}
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", fresh, ""), http.StatusOK, "")
	if res.Raw != `{"done":"PUT /apps/42"}` || res.Header.Get("X-Backend") != "example" {
		t.Fatalf("complete answered %s %v", res.Raw, res.Header)
	}
	calls := h.Backend.Mutating()
	if len(calls) != 1 {
		t.Fatalf("backend saw %d calls", len(calls))
	}
	c := calls[0]
	want := map[string]string{
		"Idempotency-Key": id, "Approval-Request-Id": id, "Approval-Approved-By": "bob",
		"Authorization": "Bearer " + fresh, "Content-Type": "application/json",
		"Approval-Justification": "", "Cookie": "",
	}
	for k, v := range want {
		if got := c.Header.Get(k); got != v {
			t.Errorf("replayed %s = %q, want %q", k, got, v)
		}
	}
	if c.Method != "PUT" || c.Path != "/apps/42" || c.Query != "force=1" || c.Body != `{"name":"payroll"}` {
		t.Fatalf("replayed %+v", c)
	}

	// At most once.
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", fresh, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.Body["error"].(map[string]any)["status"] != "completed" {
		t.Fatalf("409 does not name the status: %s", res.Raw)
	}
	if len(h.Backend.Mutating()) != 1 {
		t.Fatal("replayed twice")
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	var rec record.Record
	if err := json.Unmarshal([]byte(res.Raw), &rec); err != nil {
		t.Fatal(err)
	}
	if rec.Status != record.Completed || rec.Result == nil || rec.Result.Status != 200 || rec.Result.Body != `{"done":"PUT /apps/42"}` {
		t.Fatalf("final record %+v", rec.Result)
	}
	var actions []string
	for _, e := range rec.History {
		actions = append(actions, e.Actor+":"+e.Action)
	}
	if got := strings.Join(actions, " "); got != "alice:parked bob:approved alice:completing gateway:completed" {
		t.Fatalf("history %s", got)
	}
	if rec.History[1].Notes != "looks right" || rec.Approvers[0].Approvals[0].PayloadSHA256 != hash {
		t.Fatalf("approval not recorded with notes and hash: %+v", rec.Approvers)
	}

	// The resource is free again.
	h.Park(alice, "PUT", "/apps/42", `{}`)

	// Tokens and bodies never reach the logs.
	for _, e := range h.Logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{alice, fresh, bob, "s3cret", "payroll"} {
			if strings.Contains(line, secret) {
				t.Fatalf("log line leaks a secret or body: %s", line)
			}
		}
	}
	if h.Logs.FilterMessage("decision").Len() == 0 || h.Logs.FilterMessage("approval event").Len() < 4 {
		t.Fatal("decisions and events are not logged")
	}
}

func TestRejectAndCancel(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	bob := h.Token("bob", "approvers")

	id := h.Park(alice, "POST", "/devices/7/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{}`), http.StatusBadRequest, record.CodeNotesRequired)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `not json`), http.StatusBadRequest, approvals.CodeBadRequest)
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{"notes":"wrong device"}`), http.StatusOK, "")
	if res.Str("status") != "rejected" || !strings.Contains(res.Raw, "wrong device") {
		t.Fatalf("reject: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusConflict, record.CodeInvalidTransition)

	id = h.Park(alice, "POST", "/devices/7/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", bob, ""), http.StatusForbidden, record.CodeNotTheRequester)
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, `{"notes":"not needed"}`), http.StatusOK, "")
	if res.Str("status") != "canceled" {
		t.Fatalf("cancel: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)

	// Approved requests can be canceled too, and then never replay.
	id = h.Park(alice, "POST", "/devices/7/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusOK, "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusOK, "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if n := len(h.Backend.Mutating()); n != 0 {
		t.Fatalf("backend saw %d calls", n)
	}
}

func TestConcurrentCompletesReplayOnce(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "approvers"), ""), http.StatusOK, "")

	const n = 50
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", h.GW.URL+"/.approvals/api/v1/requests/"+id+"/complete", nil)
			req.Header.Set("Authorization", "Bearer "+alice)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	close(start)
	wg.Wait()
	close(statuses)
	count := map[int]int{}
	for s := range statuses {
		count[s]++
	}
	if count[http.StatusOK] != 1 || count[http.StatusConflict] != n-1 {
		t.Fatalf("answers %v, want one 200 and %d 409", count, n-1)
	}
	if calls := h.Backend.Mutating(); len(calls) != 1 {
		t.Fatalf("backend saw %d replays", len(calls))
	}
}

func TestBodyLimit(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.MaxBody = 100 })
	alice := h.Token("alice")
	big := strings.Repeat("x", 101)
	h.Expect(h.Do("POST", "/apps", alice, big, "Approval-Justification", "j"), http.StatusRequestEntityTooLarge, approvals.CodeBodyTooLarge)
	// Chunked: no Content-Length, the limit still holds.
	req, _ := http.NewRequest("POST", h.GW.URL+"/apps", struct{ *strings.Reader }{strings.NewReader(big)})
	req.Header.Set("Authorization", "Bearer "+alice)
	req.Header.Set("Approval-Justification", "j")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge || req.ContentLength != 0 {
		t.Fatalf("chunked oversize body: %d (content length %d)", resp.StatusCode, req.ContentLength)
	}
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=mine", alice, ""), http.StatusOK, "")
	if len(res.Body["requests"].([]any)) != 0 {
		t.Fatal("an oversize request was stored")
	}
	h.Park(alice, "POST", "/apps", `{"pad":"`+strings.Repeat("x", 100-10)+`"}`)
}

const splitPolicy = `package approval

decision := {"action": "allow", "policy": "open"} if {
	input.request.path == "/open"
} else := {"action": "deny", "policy": "rbac", "reason": "RBAC changes are frozen"} if {
	input.request.path == "/roles"
} else := {"action": "sideways"} if {
	input.request.path == "/broken"
} else := {
	"action": "require_approval", "policy": "apps", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}],
}
`

func TestPolicyActions(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), nil)
	alice := h.Token("alice")
	h.Expect(h.Do("POST", "/open", alice, `{"a":1}`), http.StatusCreated, "")
	if calls := h.Backend.Mutating(); len(calls) != 1 || calls[0].Body != `{"a":1}` || calls[0].Header.Get("Authorization") != "Bearer "+alice {
		t.Fatalf("allowed call did not pass whole: %+v", calls)
	}
	res := h.Expect(h.Do("POST", "/roles", alice, ""), http.StatusForbidden, approvals.CodeDenied)
	e := res.Body["error"].(map[string]any)
	if e["message"] != "RBAC changes are frozen" || e["policy"] != "rbac" {
		t.Fatalf("deny: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/broken", alice, ""), http.StatusForbidden, approvals.CodeDenied)
	if h.Logs.FilterMessage("policy gave no valid decision; denying").Len() != 1 {
		t.Fatal("malformed decision not logged")
	}
	h.Expect(h.Do("POST", "/open", "", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	if len(h.Backend.Mutating()) != 1 {
		t.Fatal("a refused call reached the backend")
	}
	// Methods outside the judged list pass untouched.
	h2 := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), func(o *approvalstest.Options) { o.Methods = []string{"DELETE"} })
	h2.Expect(h2.Do("POST", "/roles", "", ""), http.StatusCreated, "")
}

func TestUnreachableBackendFails(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("bob", "approvers"), ""), http.StatusOK, "")
	h.Backend.Close()
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusBadGateway, approvals.CodeReplayFailed)
	if !strings.Contains(res.Raw, `"status":"failed"`) {
		t.Fatalf("502 does not carry the failed record: %s", res.Raw)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "connect") {
		t.Fatalf("record %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestListViews(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob, carol := h.Token("alice", "ops"), h.Token("bob", "approvers"), h.Token("carol")
	admin := h.Token("audrey", "auditors")
	var ids []string
	for i := range 5 {
		ids = append(ids, h.Park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	h.Park(carol, "DELETE", "/apps/carol", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+ids[0]+"/approve", bob, ""), http.StatusOK, "")

	list := func(tok, query string) ([]string, string) {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests"+query, tok, ""), http.StatusOK, "")
		var out []string
		for _, r := range res.Body["requests"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out, res.Str("next_cursor")
	}
	mine, _ := list(alice, "")
	if len(mine) != 5 || mine[0] != ids[4] || mine[4] != ids[0] {
		t.Fatalf("mine, newest first: %v", mine)
	}
	if got, _ := list(bob, "?view=received"); len(got) != 6 {
		t.Fatalf("received: %d", len(got))
	}
	if got, _ := list(bob, "?view=received&status=approved"); len(got) != 1 || got[0] != ids[0] {
		t.Fatalf("received approved: %v", got)
	}
	if got, _ := list(carol, "?view=received"); len(got) != 0 {
		t.Fatalf("carol has no groups: %v", got)
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=all", bob, ""), http.StatusForbidden, approvals.CodeForbidden)
	if got, _ := list(admin, "?view=all"); len(got) != 6 {
		t.Fatalf("all: %d", len(got))
	}
	page1, next := list(alice, "?limit=2")
	page2, next2 := list(alice, "?limit=2&cursor="+next)
	page3, next3 := list(alice, "?limit=2&cursor="+next2)
	if len(page1) != 2 || len(page2) != 2 || len(page3) != 1 || next3 != "" || page3[0] != ids[0] {
		t.Fatalf("pages %v %v %v (%q)", page1, page2, page3, next3)
	}
	for _, q := range []string{"?view=nope", "?status=done", "?limit=0", "?limit=x", "?cursor=zzz"} {
		h.Expect(h.Do("GET", "/.approvals/api/v1/requests"+q, alice, ""), http.StatusBadRequest, approvals.CodeBadRequest)
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", "", ""), http.StatusUnauthorized, approvals.CodeUnauthenticated)
	h.Expect(h.Do("DELETE", "/.approvals/api/v1/requests", alice, ""), http.StatusMethodNotAllowed, approvals.CodeMethodNotAllowed)
	h.Expect(h.Do("GET", "/.approvals/api/v1/nothing", alice, ""), http.StatusNotFound, approvals.CodeNotFound)
}

func TestExpiryWithoutSweeper(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ApprovalExpiry = time.Hour })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Clock.Add(time.Hour)
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.Body["error"].(map[string]any)["status"] != "expired" {
		t.Fatalf("approve after expiry: %s", res.Raw)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.Str("status") != "expired" {
		t.Fatalf("status %s", res.Str("status"))
	}
	// The resource is free again.
	h.Park(alice, "DELETE", "/apps/1", "")
}

func TestStoreDownFailsClosed(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	h.Etcd.Close()
	res := h.Expect(h.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "j"), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	if res.Header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	h.Expect(h.Do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("a protected call passed while the store was down")
	}
}
