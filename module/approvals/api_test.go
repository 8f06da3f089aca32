package approvals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/etcdkit"
	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/identity"
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
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"ok"}`, "Content-Type", "application/json", "If-Match", `"`+strings.Repeat("0", 64)+`"`),
		http.StatusConflict, record.CodeStalePayload)
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, `{"notes":"looks right"}`, "Content-Type", "application/json", "If-Match", `"`+hash+`"`), http.StatusOK, "")
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
		"Idempotency-Key": id, "Approval-Request-Id": id, "Approval-Approved-By": `"bob"`,
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
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{}`, "Content-Type", "application/json"), http.StatusBadRequest, record.CodeNotesRequired)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `not json`, "Content-Type", "application/json"), http.StatusBadRequest, approvals.CodeBadRequest)
	res := h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, `{"notes":"wrong device"}`, "Content-Type", "application/json"), http.StatusOK, "")
	if res.Str("status") != "rejected" || !strings.Contains(res.Raw, "wrong device") {
		t.Fatalf("reject: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusConflict, record.CodeInvalidTransition)

	id = h.Park(alice, "POST", "/devices/7/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", bob, ""), http.StatusForbidden, record.CodeNotTheRequester)
	res = h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, `{"notes":"not needed"}`, "Content-Type", "application/json"), http.StatusOK, "")
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
	h.Undocumented("GET", "/.approvals/api/v1/nothing")
	h.Expect(h.Do("GET", "/.approvals/api/v1/nothing", alice, ""), http.StatusNotFound, approvals.CodeNotFound)
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

func TestListFilters(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, splitPolicy), nil)
	alice, carol, bob := h.Token("alice"), h.Token("carol"), h.Token("bob", "approvers")
	admin := h.Token("audrey", "auditors")
	t0 := h.Clock.Now()
	a1 := h.Park(alice, "POST", "/x/1", "")
	h.Clock.Add(time.Hour)
	c1 := h.Park(carol, "POST", "/x/2", "")
	h.Clock.Add(time.Hour)
	a2 := h.Park(alice, "POST", "/x/3", "")
	ids := func(tok, q string) string {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests"+q, tok, ""), http.StatusOK, "")
		var out []string
		for _, r := range res.Body["requests"].([]any) {
			out = append(out, r.(map[string]any)["id"].(string))
		}
		return strings.Join(out, ",")
	}
	ts := func(d time.Duration) string { return t0.Add(d).Format(time.RFC3339) }
	for q, want := range map[string]string{
		"?view=received&requester=carol":                 c1,
		"?view=all&policy=apps":                          a2 + "," + c1 + "," + a1,
		"?view=all&policy=rbac":                          "",
		"?view=received&resource=/x/3":                   a2,
		"?view=all&created_after=" + ts(30*time.Minute):  a2 + "," + c1,
		"?view=all&created_before=" + ts(90*time.Minute): c1 + "," + a1,
		"?view=all&created_after=" + ts(30*time.Minute) + "&created_before=" + ts(90*time.Minute): c1,
		"?view=mine&status=needs_approval&created_before=" + ts(time.Minute):                      "",
	} {
		tok := admin
		if strings.Contains(q, "received") {
			tok = bob
		}
		if strings.Contains(q, "mine") {
			tok = carol
		}
		if got := ids(tok, q); got != want {
			t.Errorf("%s: got %s, want %s", q, got, want)
		}
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests?created_after=yesterday", alice, ""), http.StatusBadRequest, approvals.CodeBadRequest)
}

func TestPaginationUnderConcurrentInserts(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice := h.Token("alice")
	var before []string
	for i := range 12 {
		before = append(before, h.Park(alice, "DELETE", fmt.Sprintf("/apps/%d", i), ""))
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			h.Do("DELETE", fmt.Sprintf("/apps/new-%d", i), alice, "", "Approval-Justification", "j")
		}
	}()
	var got []string
	cursor := ""
	for {
		res := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?limit=5&cursor="+cursor+"&created_before="+h.Clock.Now().Add(time.Second).Format(time.RFC3339), alice, ""), http.StatusOK, "")
		for _, r := range res.Body["requests"].([]any) {
			got = append(got, r.(map[string]any)["id"].(string))
		}
		if cursor = res.Str("next_cursor"); cursor == "" {
			break
		}
	}
	close(stop)
	wg.Wait()
	// Newer inserts sort above the cursor: every older request is listed
	// exactly once, in order.
	seen := map[string]bool{}
	var old []string
	for _, id := range got {
		if seen[id] {
			t.Fatalf("%s listed twice", id)
		}
		seen[id] = true
		for _, b := range before {
			if b == id {
				old = append(old, id)
			}
		}
	}
	for i := range before {
		if old[i] != before[len(before)-1-i] {
			t.Fatalf("older requests out of order or missing: %v", old)
		}
	}
}

func TestAuditLog(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	admin := h.Token("audrey", "auditors")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.Expect(h.Do("GET", "/.approvals/api/v1/audit", bob, ""), http.StatusForbidden, approvals.CodeForbidden)

	res := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?request_id="+id, admin, ""), http.StatusOK, "")
	var got []string
	for _, e := range res.Body["events"].([]any) {
		m := e.(map[string]any)
		got = append(got, fmt.Sprintf("%s:%s:%v->%s@%v", m["actor"], m["action"], m["from"], m["to"], m["client_ip"]))
	}
	want := "gateway:completed:completing->completed@127.0.0.1 alice:completing:approved->completing@127.0.0.1 " +
		"bob:approved:needs_approval->approved@127.0.0.1 alice:parked:<nil>->needs_approval@127.0.0.1"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit log\n got %s\nwant %s", strings.Join(got, " "), want)
	}
	res = h.Expect(h.Do("GET", "/.approvals/api/v1/audit?actor=bob&limit=1", admin, ""), http.StatusOK, "")
	if n := len(res.Body["events"].([]any)); n != 1 || res.Str("next_cursor") != "" {
		t.Fatalf("filtered page: %s", res.Raw)
	}
	page := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?limit=3", admin, ""), http.StatusOK, "")
	rest := h.Expect(h.Do("GET", "/.approvals/api/v1/audit?limit=3&cursor="+page.Str("next_cursor"), admin, ""), http.StatusOK, "")
	if len(page.Body["events"].([]any)) != 3 || len(rest.Body["events"].([]any)) != 1 {
		t.Fatalf("audit pages: %s / %s", page.Raw, rest.Raw)
	}
}

func TestStoreRestartRecovers(t *testing.T) {
	t.Parallel() // closing etcd under open watch streams takes seconds: overlap the waits
	dir := t.TempDir()
	srv, err := etcdembed.Start(etcdembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	cli := etcdkit.Dial(t, srv.Endpoint)
	h := approvalstest.NewOn(t, cli, srv, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")

	srv.Close()
	h.Expect(h.Do("DELETE", "/apps/2", alice, "", "Approval-Justification", "j"), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
	h.Expect(h.Do("GET", "/apps", "", ""), http.StatusOK, "")
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("a protected call passed while the store was down")
	}

	// The same data comes back on a fresh port (the old one may have been
	// taken meanwhile): the client is pointed at it, as an operator's DNS
	// or endpoint list would be.
	srv2, err := etcdembed.Start(etcdembed.Options{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv2.Close)
	cli.SetEndpoints(srv2.Endpoint)
	// The same gateway, without a restart, works again.
	testkit.WaitFor(t, func() bool {
		return h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, "").Status == http.StatusOK
	})
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")
	h.Park(alice, "DELETE", "/apps/2", "")
}

// TestOnePersonInAnotherSpelling: refusals fail safe and grants are
// exact. Tokens whose subject could be another's (another case, NFD,
// fullwidth, white space around) cannot approve their own request or
// approve twice toward a quorum, and share one pending cap; but only the
// subject exactly as issued is the requester: "Alice" without groups is no
// party to alice's request (404 for reading and cancelling it), and her
// own list does not show it.
func TestOnePersonInAnotherSpelling(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "two", "resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 2}]}
`), func(o *approvalstest.Options) { o.MaxPendingPerIdentity = 2 })
	alice := h.Token("alice", "approvers")
	for i, variant := range []string{"ALICE", "Alice", "\uff41lice", "alice ", " alice"} {
		id := h.Park(alice, "DELETE", "/roles/"+strconv.Itoa(10+i), "")
		// With the approver group: a party, refused as the requester.
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token(variant, "approvers"), ""), http.StatusForbidden, "self_approval")
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", h.Token(variant, "approvers"), ""), http.StatusForbidden, "not_the_requester")
		// Without: no party at all.
		h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, h.Token(variant), ""), http.StatusNotFound, "not_found")
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", h.Token(variant), ""), http.StatusNotFound, "not_found")
		mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=mine", h.Token(variant), ""), http.StatusOK, "")
		if reqs, _ := mine.Body["requests"].([]any); len(reqs) != 0 {
			t.Fatalf("%q lists alice's requests as their own: %s", variant, mine.Raw)
		}
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusOK, "")
	}

	id := h.Park(alice, "DELETE", "/roles/2", "")
	h.Approve(h.Token("bob", "approvers"), id)
	for _, bob := range []string{"Bob", "BOB", "\uff42\uff4f\uff42", "bob ", " bob"} {
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token(bob, "approvers"), ""), http.StatusConflict, "already_approved")
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, h.Token("jos\u00e9", "approvers"), ""), http.StatusOK, "")
	rec := h.Approve(h.Token("carol", "approvers"), id)
	if rec.Str("status") != "approved" {
		t.Fatalf("status %s", rec.Str("status"))
	}
	mine := h.Expect(h.Do("GET", "/.approvals/api/v1/requests?view=mine&status=approved", alice, ""), http.StatusOK, "")
	if reqs, _ := mine.Body["requests"].([]any); len(reqs) != 1 {
		t.Fatalf("alice's own requests: %s", mine.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", h.Token("ALICE", "approvers"), ""), http.StatusForbidden, "not_the_requester")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")

	// The pending cap counts every spelling as one.
	h.Park(alice, "DELETE", "/apps/1", "")
	h.Park(h.Token("ALICE"), "DELETE", "/apps/2", "")
	h.Expect(h.Do("DELETE", "/apps/3", h.Token("\uff41lice "), "", "Approval-Justification", "j"), http.StatusTooManyRequests, approvals.CodeTooManyPending)
}

// TestNFCAndNFDAreOnePerson: one approver spelt in NFC, then NFD, does not
// meet a two-approver quorum, and the requester in NFD cannot approve.
func TestNFCAndNFDAreOnePerson(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "two", "resource": trim_prefix(input.request.path, "/"),
	"approvers": [{"group": "approvers", "required": 2}]}
`), nil)
	id := h.Park(h.Token("jos\u00e9", "approvers"), "DELETE", "/roles/2", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("jose\u0301", "approvers"), ""), http.StatusForbidden, "self_approval")
	h.Approve(h.Token("zo\u00eb", "approvers"), id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("zoe\u0308", "approvers"), ""), http.StatusConflict, "already_approved")
}

// TestCaseSensitiveSubjects: with CaseSensitiveSubjects, ids that differ
// only in case are different identities.
func TestCaseSensitiveSubjects(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.CaseSensitiveSubjects = true })
	id := h.Park(h.Token("u-1a"), "DELETE", "/apps/1", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", h.Token("U-1A", "approvers"), ""), http.StatusOK, "")
}

// TestActionBodiesAreStrict: an action's body is application/json (415
// otherwise), UTF-8, and one object of the known members, each once and a
// string (400 bad_request naming what is wrong); an empty body needs no
// type. A refused call changes nothing.
func TestActionBodiesAreStrict(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	approve := "/.approvals/api/v1/requests/" + id + "/approve"
	tests := []struct {
		name    string
		body    string
		headers []string
		status  int
		code    string
		names   string // in the message
	}{
		{"no Content-Type", `{"notes":"ok"}`, nil, 415, approvals.CodeUnsupportedMediaType, ""},
		{"text/plain", `{"notes":"ok"}`, []string{"Content-Type", "text/plain"}, 415, approvals.CodeUnsupportedMediaType, ""},
		{"a form", `notes=ok`, []string{"Content-Type", "application/x-www-form-urlencoded"}, 415, approvals.CodeUnsupportedMediaType, ""},
		{"another charset", `{"notes":"ok"}`, []string{"Content-Type", "application/json; charset=iso-8859-1"}, 415, approvals.CodeUnsupportedMediaType, ""},
		{"a content coding", `{"notes":"ok"}`, []string{"Content-Type", "application/json", "Content-Encoding", "gzip"}, 415, approvals.CodeUnsupportedMediaType, ""},
		{"an unknown member", `{"notes":"ok","bogus":1}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, `"bogus"`},
		{"a member in another case", `{"Notes":"ok"}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, `"Notes"`},
		{"a repeated member", `{"notes":"a","notes":"b"}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, `"notes" is repeated`},
		{"invalid UTF-8", "{\"notes\":\"ok\xff\"}", []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, "UTF-8"},
		{"a lone surrogate", `{"notes":"ok\ud800"}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, ""},
		{"notes not a string", `{"notes":1}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, `"notes" is not a string`},
		{"notes null", `{"notes":null}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, `"notes" is not a string`},
		{"an array", `[{"notes":"ok"}]`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, "not a JSON object"},
		{"two objects", `{"notes":"ok"} {}`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, "more than one"},
		{"white space only", ` `, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, ""},
		{"not JSON", `notes`, []string{"Content-Type", "application/json"}, 400, approvals.CodeBadRequest, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res := h.Expect(h.Do("POST", approve, bob, tc.body, tc.headers...), tc.status, tc.code)
			if msg, _ := res.Body["error"].(map[string]any)["message"].(string); !strings.Contains(msg, tc.names) {
				t.Fatalf("the message %q does not name %s", msg, tc.names)
			}
		})
	}
	// Two Content-Type headers.
	req, _ := http.NewRequest("POST", h.GW.URL+approve, strings.NewReader(`{"notes":"ok"}`))
	req.Header.Set("Authorization", "Bearer "+bob)
	req.Header["Content-Type"] = []string{"application/json", "text/plain"}
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != http.StatusUnsupportedMediaType {
		t.Fatalf("two Content-Types: %v %v", resp, err)
	}
	if rec := h.Record(alice, id); rec.Str("status") != "needs_approval" || strings.Contains(rec.Raw, `"actor":"bob"`) {
		t.Fatalf("a refused action changed the request: %s", rec.Raw)
	}
	// An empty body needs no type; notes in UTF-8 with the charset named.
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/reject", bob, ""), http.StatusBadRequest, "notes_required")
	res := h.Expect(h.Do("POST", approve, bob, `{"notes":"vérifié"}`, "Content-Type", "Application/JSON; charset=UTF-8"), http.StatusOK, "")
	if !strings.Contains(res.Raw, `"notes":"vérifié"`) {
		t.Fatalf("the notes: %s", res.Raw)
	}
	id2 := h.Park(alice, "DELETE", "/apps/2", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id2+"/cancel", alice, ""), http.StatusOK, "")
}

// TestOtherSpellingsOfARouteAreNotFound: a path under the prefix spelt
// otherwise than the route table spells it (dot segments, doubled
// slashes, escapes) is a JSON 404, never net/http's redirect to the clean
// path, and does nothing.
func TestOtherSpellingsOfARouteAreNotFound(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	base := "/.approvals/api/v1/requests/" + id
	for _, target := range []string{
		base + "/x/../approve", base + "/./approve", base + "//approve", "/.approvals/api/v1//requests/" + id + "/approve",
		base + "/%2e%2e/" + id + "/approve", "/.approvals/api/v1/requests/" + id + "%2Fapprove", base + "/appr%6Fve",
		"/.approvals/./api/v1/requests/" + id + "/approve", "/.approvals/api/v1/../v1/requests/" + id + "/approve", base + "/approve/",
	} {
		u, err := url.Parse(target)
		if err != nil {
			t.Fatal(err)
		}
		h.Undocumented("POST", u.Path)
		res := h.Expect(h.Do("POST", target, bob, ""), http.StatusNotFound, approvals.CodeNotFound)
		if res.Header.Get("Location") != "" || !strings.HasPrefix(res.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s: %v", target, res.Header)
		}
	}
	for _, target := range []string{"/.approvals/api/v1/../api/v1/requests", "/.approvals//api/v1/requests", "/.approvals/api/v1/requests/."} {
		u, _ := url.Parse(target)
		h.Undocumented("GET", u.Path)
		h.Expect(h.Do("GET", target, alice, ""), http.StatusNotFound, approvals.CodeNotFound)
	}
	if rec := h.Record(alice, id); rec.Str("status") != "needs_approval" {
		t.Fatalf("a misspelt route acted: %s", rec.Raw)
	}
}

// TestConsoleFormNotesAreUTF8: notes from the console's form (Flow.Act)
// are held to UTF-8 as the API's are: refused, not stored as U+FFFD.
func TestConsoleFormNotesAreUTF8(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	id := h.Park(h.Token("alice"), "DELETE", "/apps/1", "")
	bob := &identity.Identity{Subject: "bob", Groups: []string{"approvers"}}
	r := httptest.NewRequest("POST", "/.approvals/requests/"+id+"/approve", nil)
	_, err := h.Svc.Act(r, bob, id, "approve", "ok\xff", "", nil)
	if status, code, _ := approvals.ErrorOf(err); status != http.StatusBadRequest || code != approvals.CodeBadRequest {
		t.Fatalf("notes not UTF-8: %v", err)
	}
	if rec := h.Record(h.Token("alice"), id); strings.Contains(rec.Raw, `"actor":"bob"`) {
		t.Fatalf("the approval was recorded: %s", rec.Raw)
	}
}

// TestAnotherSitesRecordIsAbsent: a record of another site found in this
// site's key space (put there by hand, or by a misconfigured gateway) is
// absent all the same: reads and actions are 404 and lists leave it out.
func TestAnotherSitesRecordIsAbsent(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob, audrey := h.Token("alice"), h.Token("bob", "approvers"), h.Token("audrey", "auditors")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	key := h.Opts.Store.Prefix() + "requests/" + id
	got, err := h.Cli.Get(context.Background(), key)
	if err != nil || len(got.Kvs) != 1 {
		t.Fatalf("reading %s: %v", key, err)
	}
	var rec map[string]any
	if err := json.Unmarshal(got.Kvs[0].Value, &rec); err != nil || rec["site"] != "default" {
		t.Fatalf("the stored record: %s (%v)", got.Kvs[0].Value, err)
	}
	rec["site"] = "rbac"
	b, _ := json.Marshal(rec)
	if _, err := h.Cli.Put(context.Background(), key, string(b)); err != nil {
		t.Fatal(err)
	}
	for _, who := range []string{alice, bob, audrey} {
		h.Expect(h.Do("GET", "/.approvals/api/v1/requests/"+id, who, ""), http.StatusNotFound, approvals.CodeNotFound)
		for _, view := range []string{"mine", "received", "all"} {
			if list := h.Do("GET", "/.approvals/api/v1/requests?view="+view, who, ""); strings.Contains(list.Raw, id) {
				t.Fatalf("view=%s lists another site's request: %s", view, list.Raw)
			}
		}
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/approve", bob, ""), http.StatusNotFound, approvals.CodeNotFound)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusNotFound, approvals.CodeNotFound)
}
