package approvals

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/record"
)

func TestWholeFlow(t *testing.T) {
	h := newHarness(t, "", nil)
	alice := h.token("alice", "ops")
	bob := h.token("bob", "approvers")
	eve := h.token("eve", "sales")

	// Reads pass untouched, without a token.
	h.expect(h.do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.backend.calls) != 1 {
		t.Fatal("read did not reach the backend")
	}

	// No token, bad token.
	res := h.expect(h.do("DELETE", "/apps/42", "", ""), http.StatusUnauthorized, CodeUnauthenticated)
	if res.header.Get("WWW-Authenticate") != "Bearer" {
		t.Fatalf("WWW-Authenticate %q", res.header.Get("WWW-Authenticate"))
	}
	res = h.expect(h.do("DELETE", "/apps/42", "garbage", ""), http.StatusUnauthorized, CodeUnauthenticated)
	if !strings.HasPrefix(res.header.Get("WWW-Authenticate"), "Bearer") {
		t.Fatal("no WWW-Authenticate on an invalid token")
	}

	// No justification.
	res = h.expect(h.do("DELETE", "/apps/42", alice, ""), http.StatusPreconditionRequired, CodeJustificationRequired)
	if !strings.Contains(res.raw, "Approval-Justification") {
		t.Fatalf("428 does not name the header: %s", res.raw)
	}

	// Parked.
	res = h.expect(h.do("PUT", "/apps/42?force=1", alice, `{"name":"payroll"}`,
		"Approval-Justification", "CHG-42 rename", "Content-Type", "application/json", "Cookie", "session=s3cret"),
		http.StatusAccepted, "")
	id := res.str("id")
	if res.header.Get("Location") != "/.approvals/api/v1/requests/"+id {
		t.Fatalf("Location %q", res.header.Get("Location"))
	}
	if res.str("status") != "needs_approval" || res.str("justification") != "CHG-42 rename" || res.str("resource") != "apps/42" || res.str("policy") != "default" {
		t.Fatalf("record %s", res.raw)
	}
	if strings.Contains(res.raw, alice) || strings.Contains(res.raw, "s3cret") {
		t.Fatal("the record holds credentials")
	}
	if n := len(h.backend.mutating()); n != 0 {
		t.Fatalf("backend saw %d mutating calls before approval", n)
	}

	// One pending request per resource.
	res = h.expect(h.do("PUT", "/apps/42", alice, `{}`, "Approval-Justification", "again"), http.StatusConflict, CodePendingExists)
	if res.body["error"].(map[string]any)["request_id"] != id {
		t.Fatalf("409 does not name the pending request: %s", res.raw)
	}

	// Who may see and act.
	h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, eve, ""), http.StatusNotFound, CodeNotFound)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", eve, ""), http.StatusNotFound, CodeNotFound)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", alice, ""), http.StatusForbidden, record.CodeSelfApproval)
	aliceApprover := h.token("alice", "approvers", "ops")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", aliceApprover, ""), http.StatusForbidden, record.CodeSelfApproval)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	admin := h.token("audrey", "auditors")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", admin, ""), http.StatusForbidden, record.CodeNotAnApprover)

	// The approver sees the body and the payload hash.
	res = h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, bob, ""), http.StatusOK, "")
	if res.str("body") != `{"name":"payroll"}` || res.header.Get("ETag") != `"`+res.str("payload_sha256")+`"` {
		t.Fatalf("GET: %s etag %s", res.raw, res.header.Get("ETag"))
	}
	hash := res.str("payload_sha256")

	// Approve, bound to the payload.
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"ok"}`, "If-Match", `"`+strings.Repeat("0", 64)+`"`),
		http.StatusConflict, record.CodeStalePayload)
	res = h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"looks right"}`, "If-Match", `"`+hash+`"`), http.StatusOK, "")
	if res.str("status") != "approved" {
		t.Fatalf("after approve: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", bob, ""), http.StatusForbidden, record.CodeNotTheRequester)
	if n := len(h.backend.mutating()); n != 0 {
		t.Fatalf("backend saw %d mutating calls before complete", n)
	}

	// Complete with a fresh token: the backend's own answer comes back.
	fresh := h.token("alice", "ops")
	if fresh == alice {
		t.Fatal("tokens are not distinct")
	}
	res = h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", fresh, ""), http.StatusOK, "")
	if res.raw != `{"done":"PUT /apps/42"}` || res.header.Get("X-Backend") != "example" {
		t.Fatalf("complete answered %s %v", res.raw, res.header)
	}
	calls := h.backend.mutating()
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
	res = h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", fresh, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.body["error"].(map[string]any)["status"] != "completed" {
		t.Fatalf("409 does not name the status: %s", res.raw)
	}
	if len(h.backend.mutating()) != 1 {
		t.Fatal("replayed twice")
	}
	res = h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	var rec record.Record
	if err := json.Unmarshal([]byte(res.raw), &rec); err != nil {
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
	h.park(alice, "PUT", "/apps/42", `{}`)

	// Tokens and bodies never reach the logs.
	for _, e := range h.logs.All() {
		line := fmt.Sprint(e.Message, e.ContextMap())
		for _, secret := range []string{alice, fresh, bob, "s3cret", "payroll"} {
			if strings.Contains(line, secret) {
				t.Fatalf("log line leaks a secret or body: %s", line)
			}
		}
	}
	if h.logs.FilterMessage("decision").Len() == 0 || h.logs.FilterMessage("approval event").Len() < 4 {
		t.Fatal("decisions and events are not logged")
	}
}

func TestRejectAndCancel(t *testing.T) {
	h := newHarness(t, "", nil)
	alice := h.token("alice")
	bob := h.token("bob", "approvers")

	id := h.park(alice, "POST", "/devices/7/wipe", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{}`), http.StatusBadRequest, record.CodeNotesRequired)
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `not json`), http.StatusBadRequest, CodeBadRequest)
	res := h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{"notes":"wrong device"}`), http.StatusOK, "")
	if res.str("status") != "rejected" || !strings.Contains(res.raw, "wrong device") {
		t.Fatalf("reject: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusConflict, record.CodeInvalidTransition)

	id = h.park(alice, "POST", "/devices/7/wipe", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", bob, ""), http.StatusForbidden, record.CodeNotTheRequester)
	res = h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, `{"notes":"not needed"}`), http.StatusOK, "")
	if res.str("status") != "canceled" {
		t.Fatalf("cancel: %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)

	// Approved requests can be canceled too, and then never replay.
	id = h.park(alice, "POST", "/devices/7/wipe", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusOK, "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusOK, "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if n := len(h.backend.mutating()); n != 0 {
		t.Fatalf("backend saw %d calls", n)
	}
}

func TestConcurrentCompletesReplayOnce(t *testing.T) {
	h := newHarness(t, "", nil)
	alice := h.token("alice")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.token("bob", "approvers"), ""), http.StatusOK, "")

	const n = 50
	statuses := make(chan int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			req, _ := http.NewRequest("POST", h.gw.URL+"/.approvals/api/v1/requests/"+id+"/complete", nil)
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
	if calls := h.backend.mutating(); len(calls) != 1 {
		t.Fatalf("backend saw %d replays", len(calls))
	}
}

func TestBodyLimit(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.MaxBody = 100 })
	alice := h.token("alice")
	big := strings.Repeat("x", 101)
	h.expect(h.do("POST", "/apps", alice, big, "Approval-Justification", "j"), http.StatusRequestEntityTooLarge, CodeBodyTooLarge)
	// Chunked: no Content-Length, the limit still holds.
	req, _ := http.NewRequest("POST", h.gw.URL+"/apps", struct{ *strings.Reader }{strings.NewReader(big)})
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
	res := h.expect(h.do("GET", "/.approvals/api/v1/requests?view=mine", alice, ""), http.StatusOK, "")
	if len(res.body["requests"].([]any)) != 0 {
		t.Fatal("an oversize request was stored")
	}
	h.park(alice, "POST", "/apps", `{"pad":"`+strings.Repeat("x", 100-10)+`"}`)
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
	h := newHarness(t, writePolicy(t, splitPolicy), nil)
	alice := h.token("alice")
	h.expect(h.do("POST", "/open", alice, `{"a":1}`), http.StatusCreated, "")
	if calls := h.backend.mutating(); len(calls) != 1 || calls[0].Body != `{"a":1}` || calls[0].Header.Get("Authorization") != "Bearer "+alice {
		t.Fatalf("allowed call did not pass whole: %+v", calls)
	}
	res := h.expect(h.do("POST", "/roles", alice, ""), http.StatusForbidden, CodeDenied)
	e := res.body["error"].(map[string]any)
	if e["message"] != "RBAC changes are frozen" || e["policy"] != "rbac" {
		t.Fatalf("deny: %s", res.raw)
	}
	h.expect(h.do("POST", "/broken", alice, ""), http.StatusForbidden, CodeDenied)
	if h.logs.FilterMessage("policy gave no valid decision; denying").Len() != 1 {
		t.Fatal("malformed decision not logged")
	}
	h.expect(h.do("POST", "/open", "", ""), http.StatusUnauthorized, CodeUnauthenticated)
	if len(h.backend.mutating()) != 1 {
		t.Fatal("a refused call reached the backend")
	}
	// Methods outside the judged list pass untouched.
	h2 := newHarness(t, writePolicy(t, splitPolicy), func(o *Options) { o.Methods = []string{"DELETE"} })
	h2.expect(h2.do("POST", "/roles", "", ""), http.StatusCreated, "")
}

func TestUnreachableBackendFails(t *testing.T) {
	h := newHarness(t, "", nil)
	alice := h.token("alice")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.token("bob", "approvers"), ""), http.StatusOK, "")
	h.backend.Close()
	res := h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusBadGateway, CodeReplayFailed)
	if !strings.Contains(res.raw, `"status":"failed"`) {
		t.Fatalf("502 does not carry the failed record: %s", res.raw)
	}
	res = h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.str("status") != "failed" || !strings.Contains(res.raw, "connect") {
		t.Fatalf("record %s", res.raw)
	}
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestListViews(t *testing.T) {
	h := newHarness(t, "", nil)
	alice, bob, carol := h.token("alice", "ops"), h.token("bob", "approvers"), h.token("carol")
	admin := h.token("audrey", "auditors")
	var ids []string
	for i := range 5 {
		ids = append(ids, h.park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	h.park(carol, "DELETE", "/apps/carol", "")
	h.expect(h.do("POST", "/.approvals/api/v1/requests/"+ids[0]+"/approve", bob, ""), http.StatusOK, "")

	list := func(tok, query string) ([]string, string) {
		res := h.expect(h.do("GET", "/.approvals/api/v1/requests"+query, tok, ""), http.StatusOK, "")
		var out []string
		for _, r := range res.body["requests"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return out, res.str("next_cursor")
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
	h.expect(h.do("GET", "/.approvals/api/v1/requests?view=all", bob, ""), http.StatusForbidden, CodeForbidden)
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
		h.expect(h.do("GET", "/.approvals/api/v1/requests"+q, alice, ""), http.StatusBadRequest, CodeBadRequest)
	}
	h.expect(h.do("GET", "/.approvals/api/v1/requests", "", ""), http.StatusUnauthorized, CodeUnauthenticated)
	h.expect(h.do("DELETE", "/.approvals/api/v1/requests", alice, ""), http.StatusMethodNotAllowed, CodeMethodNotAllowed)
	h.expect(h.do("GET", "/.approvals/api/v1/nothing", alice, ""), http.StatusNotFound, CodeNotFound)
}

func TestExpiryWithoutSweeper(t *testing.T) {
	h := newHarness(t, "", func(o *Options) { o.ApprovalExpiry = time.Hour })
	alice, bob := h.token("alice"), h.token("bob", "approvers")
	id := h.park(alice, "DELETE", "/apps/1", "")
	h.clock.Add(time.Hour)
	res := h.expect(h.do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusConflict, record.CodeInvalidTransition)
	if res.body["error"].(map[string]any)["status"] != "expired" {
		t.Fatalf("approve after expiry: %s", res.raw)
	}
	res = h.expect(h.do("GET", "/.approvals/api/v1/requests/"+id, alice, ""), http.StatusOK, "")
	if res.str("status") != "expired" {
		t.Fatalf("status %s", res.str("status"))
	}
	// The resource is free again.
	h.park(alice, "DELETE", "/apps/1", "")
}

func TestStoreDownFailsClosed(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	h := newHarness(t, "", nil)
	alice := h.token("alice")
	h.etcd.Close()
	res := h.expect(h.do("DELETE", "/apps/1", alice, "", "Approval-Justification", "j"), http.StatusServiceUnavailable, CodeStoreUnavailable)
	if res.header.Get("Retry-After") == "" {
		t.Fatal("503 without Retry-After")
	}
	h.expect(h.do("GET", "/.approvals/api/v1/requests", alice, ""), http.StatusServiceUnavailable, CodeStoreUnavailable)
	h.expect(h.do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.backend.mutating()) != 0 {
		t.Fatal("a protected call passed while the store was down")
	}
}
