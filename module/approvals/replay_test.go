package approvals_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/dunglas/httpsfv"
	"github.com/golang-jwt/jwt/v5"
)

// TestClientTrustHeadersNeverReachTheBackend: the headers that tell a
// backend a call was approved are removed from every call the gateway
// forwards (a read, an allowed call, a dry run, a break-glass call), also
// when spelt with underscores; only a replay carries them, set by the
// gateway.
func TestClientTrustHeadersNeverReachTheBackend(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "allow", "policy": "open"} if input.request.path == "/open"

decision := {"action": "require_approval", "policy": "rollout", "resource": "dry",
	"approvers": [{"group": "approvers", "required": 1}], "dry_run": true} if input.request.path == "/dry"

decision := {"action": "require_approval", "policy": "glass", "resource": "glass",
	"approvers": [{"group": "approvers", "required": 1}], "break_glass": true} if input.request.path == "/glass"

decision := {"action": "require_approval", "policy": "parked", "resource": "parked",
	"approvers": [{"group": "approvers", "required": 1}]} if input.request.path == "/parked"
`), nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	spoof := []string{
		"Approval-Approved-By", "bob, carol", "Approval-Request-Id", "0190c5a2-0000-7000-8000-000000000000",
		"Idempotency-Key", "0190c5a2-0000-7000-8000-000000000000", "Approval-Attestation", "eyJhbGciOiJub25lIn0.e30.",
		"Approval_Approved_By", "bob", "approval_request_id", "x",
		"Approval-Justification", "because",
	}
	h.Expect(h.Do("GET", "/read", "", "", spoof...), http.StatusOK, "")
	h.Expect(h.Do("POST", "/open", alice, "{}", spoof...), http.StatusCreated, "")
	h.Expect(h.Do("POST", "/dry", alice, "{}", spoof...), http.StatusCreated, "")
	h.Expect(h.Do("POST", "/glass", alice, "{}", spoof...), http.StatusCreated, "")
	id := h.Expect(h.Do("POST", "/parked", alice, "{}", spoof...), http.StatusAccepted, "").Str("id")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")

	if len(h.Backend.Calls()) != 5 {
		t.Fatalf("the backend saw %d calls, want 5", len(h.Backend.Calls()))
	}
	for _, c := range h.Backend.Calls()[:4] {
		for k := range c.Header {
			switch http.CanonicalHeaderKey(k) {
			case "Approval-Approved-By", "Approval-Request-Id", "Idempotency-Key", "Approval-Attestation",
				"Approval_approved_by", "Approval_request_id":
				t.Errorf("%s %s reached the backend with the client's %s: %q", c.Method, c.Path, k, c.Header[k])
			}
		}
	}
	replay := h.Backend.Calls()[4]
	if replay.Header.Get("Approval-Approved-By") != `"bob"` || replay.Header.Get("Approval-Request-Id") != id ||
		replay.Header.Get("Idempotency-Key") != id || replay.Header.Get("Approval_approved_by") != "" ||
		len(replay.Header.Values("Approval-Attestation")) != 1 || strings.HasPrefix(replay.Header.Get("Approval-Attestation"), "eyJhbGciOiJub25lIn0") {
		t.Fatalf("the replay carried %v", replay.Header)
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

const autoPolicy = `package approval

decision := {
	"action": "require_approval", "policy": "auto", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 2}], "complete": "auto",
}
`

func TestAutoComplete(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, autoPolicy), nil)
	alice, bob, carol := h.Token("alice"), h.Token("bob", "approvers"), h.Token("carol", "approvers")
	id := h.Park(alice, "POST", "/scripts", `{"run":"all"}`)
	res := h.Approve(bob, id)
	if res.Str("status") != "needs_approval" || len(h.Backend.Mutating()) != 0 {
		t.Fatal("replayed before the quorum")
	}
	res = h.Approve(carol, id)
	if res.Str("status") != "completed" {
		t.Fatalf("auto-complete: %s", res.Raw)
	}
	result := res.Body["result"].(map[string]any)
	if result["status"].(float64) != 201 || result["body_excerpt"] != `{"done":"POST /scripts"}` {
		t.Fatalf("the approval's answer lacks the backend's result: %v", result)
	}
	calls := h.Backend.Mutating()
	if len(calls) != 1 || calls[0].Body != `{"run":"all"}` {
		t.Fatalf("backend calls %+v", calls)
	}
	if a := calls[0].Header.Get("Authorization"); a != "" {
		t.Fatalf("an approver's or the requester's token reached the backend: %q", a)
	}
	// The auto-complete replay is attested like any other.
	c, _ := verifyAttestation(t, calls[0].Header.Get("Approval-Attestation"), []byte(h.Do("GET", "/.approvals/.well-known/jwks.json", "", "").Raw))
	if c.Jti != id || c.Sub != "alice" || strings.Join(c.Approvers, ",") != "bob,carol" || c.Req.Target != "/scripts" {
		t.Fatalf("the auto-complete's attestation: %+v", c)
	}
	if got := approvalstest.HistoryActions(h.Record(alice, id)); got != "alice:parked bob:approved carol:approved gateway:completing gateway:completed" {
		t.Fatalf("history %s", got)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

func TestInterruptedReplayFailsAfterClaimTimeout(t *testing.T) {
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.ClaimTimeout = 5 * time.Minute })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)

	// The gateway dies between the claim and the backend's answer: the
	// handler is killed while the call is in flight, so nothing after the
	// replay runs.
	started := make(chan struct{})
	crashed := func(w http.ResponseWriter, r *http.Request) error {
		close(started)
		panic(http.ErrAbortHandler)
	}
	req := httptest.NewRequest("POST", "/.approvals/api/v1/requests/"+id+"/complete", nil)
	req.Header.Set("Authorization", "Bearer "+alice)
	func() {
		defer func() { _ = recover() }()
		_ = h.Svc.ServeHTTP(httptest.NewRecorder(), req, crashed)
	}()
	<-started

	if h.Record(alice, id).Str("status") != "completing" {
		t.Fatal("the claim was not left in completing")
	}
	h.Clock.Add(4 * time.Minute)
	if h.Record(alice, id).Str("status") != "completing" {
		t.Fatal("failed before the claim timeout")
	}
	// Never replayed automatically: after the timeout it is failed, with the
	// reason visible to the requester.
	h.Clock.Add(time.Minute)
	res := h.Record(alice, id)
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "outcome unknown") {
		t.Fatalf("after the claim timeout: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
	if len(h.Backend.Mutating()) != 0 {
		t.Fatal("replayed again")
	}
	// The requester may resubmit.
	h.Park(alice, "DELETE", "/apps/1", "")
}

func TestCanceledReplayIsOutcomeUnknown(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)

	// A backend that hangs, and a caller that gives up.
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hung := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		arrived <- struct{}{}
		<-release
	}))
	defer hung.Close()
	defer close(release)
	ctx, cancel := context.WithCancel(context.Background())
	req := httptest.NewRequest("POST", "/.approvals/api/v1/requests/"+id+"/complete", nil).WithContext(ctx)
	req.Header.Set("Authorization", "Bearer "+alice)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = h.Svc.ServeHTTP(httptest.NewRecorder(), req, approvalstest.ProxyTo(hung.URL))
	}()
	<-arrived
	cancel()
	<-done
	res := h.Record(alice, id)
	if res.Str("status") != "failed" || !strings.Contains(res.Raw, "outcome unknown") {
		t.Fatalf("after the cut: %s", res.Raw)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusConflict, record.CodeInvalidTransition)
}

// capturedReplay is what the service handed the next handler: the replay
// request itself, before any proxy, with its body.
type capturedReplay struct {
	req  *http.Request
	body []byte
}

// replayRecorder is a next handler that keeps every request it is given.
type replayRecorder struct {
	mu   sync.Mutex
	seen []capturedReplay
}

func (c *replayRecorder) next(w http.ResponseWriter, r *http.Request) error {
	b, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	c.mu.Lock()
	c.seen = append(c.seen, capturedReplay{r, b})
	c.mu.Unlock()
	w.WriteHeader(http.StatusOK)
	_, err = io.WriteString(w, `{"done":true}`)
	return err
}

// since returns what was given after the first n.
func (c *replayRecorder) since(n int) []capturedReplay {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]capturedReplay(nil), c.seen[n:]...)
}

func (c *replayRecorder) count() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}

// recordingGateway serves h's service in front of a replayRecorder.
func recordingGateway(t *testing.T, h *approvalstest.Harness) (string, *replayRecorder) {
	rec := &replayRecorder{}
	gw := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := h.Svc.ServeHTTP(w, r, rec.next); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
		}
	}))
	t.Cleanup(gw.Close)
	return gw.Listener.Addr().String(), rec
}

// smuggled is a call whose every part but its Authorization must stay out
// of a replay it triggers: a query, a Host, headers (a method override
// among them), a chunked body with trailers, Expect: 100-continue and
// Connection: close.
func smuggled(method, target, host, token, body string) string {
	return method + " " + target + " HTTP/1.1\r\n" +
		"Host: " + host + "\r\n" +
		"Authorization: Bearer " + token + "\r\n" +
		"Content-Type: application/json\r\n" +
		"X-Smuggled: 1\r\n" +
		"X-HTTP-Method-Override: DELETE\r\n" +
		"Cookie: session=complete-call\r\n" +
		"Expect: 100-continue\r\n" +
		"Trailer: X-HTTP-Method-Override, X-Trailer-Smuggled\r\n" +
		"Transfer-Encoding: chunked\r\n" +
		"Connection: close\r\n\r\n" +
		fmt.Sprintf("%x\r\n%s\r\n", len(body), body) +
		"0\r\nX-HTTP-Method-Override: DELETE\r\nX-Trailer-Smuggled: 1\r\n\r\n"
}

// replayBody is the body of the calls parked for the framing tests.
const replayBody = `{"run":"all","script":"echo 1"}`

// parkRaw parks POST target, as its own bytes, with a Content-Length.
func parkRaw(t *testing.T, addr, token, target string) string {
	t.Helper()
	raw := "POST " + target + " HTTP/1.1\r\nHost: parked.example\r\nAuthorization: Bearer " + token +
		"\r\nApproval-Justification: CHG-7\r\nContent-Type: application/json\r\nX-Parked: yes\r\n" +
		fmt.Sprintf("Content-Length: %d\r\nConnection: close\r\n\r\n%s", len(replayBody), replayBody)
	status, answer := testkit.RawCall(t, addr, raw)
	var rec struct{ ID string }
	if status != http.StatusAccepted || json.Unmarshal(answer, &rec) != nil || rec.ID == "" {
		t.Fatalf("parking %s: %d %s", target, status, answer)
	}
	return rec.ID
}

// checkReplay compares a replay with the call parkRaw parked as target:
// the same method, raw target, host, headers and body framed by its
// Content-Length, plus the headers the gateway sets and auth ("" for none).
func checkReplay(t *testing.T, c capturedReplay, id, target, auth string, jwks []byte) {
	t.Helper()
	rr := c.req
	if rr.Method != "POST" || rr.RequestURI != target || rr.URL.RequestURI() != target || rr.Host != "parked.example" {
		t.Errorf("replayed %s %q (URL %q) to host %q; parked POST %q to parked.example", rr.Method, rr.RequestURI, rr.URL.RequestURI(), rr.Host, target)
	}
	if string(c.body) != replayBody || rr.ContentLength != int64(len(replayBody)) || len(rr.TransferEncoding) != 0 || rr.Trailer != nil || rr.Close {
		t.Errorf("body %q, Content-Length %d, Transfer-Encoding %v, Trailer %v, Close %v", c.body, rr.ContentLength, rr.TransferEncoding, rr.Trailer, rr.Close)
	}
	want := map[string]string{"Content-Type": "application/json", "X-Parked": "yes",
		"Idempotency-Key": id, "Approval-Request-Id": id, "Approval-Approved-By": `"bob"`, "Approval-Attestation": "*"}
	if auth != "" {
		want["Authorization"] = auth
	}
	for k, vs := range rr.Header {
		w, ok := want[k]
		switch {
		case !ok:
			t.Errorf("the replay carries %s: %q", k, vs)
		case len(vs) != 1 || (w != "*" && vs[0] != w):
			t.Errorf("the replay's %s is %q, want %q", k, vs, w)
		}
	}
	for k := range want {
		if len(rr.Header[k]) == 0 {
			t.Errorf("the replay lacks %s", k)
		}
	}
	a, _ := verifyAttestation(t, rr.Header.Get("Approval-Attestation"), jwks)
	if a.Req.Target != target || a.Req.Method != "POST" || a.Jti != id {
		t.Errorf("the attestation signs %s %q for %s, want POST %q for %s", a.Req.Method, a.Req.Target, a.Jti, target, id)
	}
}

// TestReplayIsTheStoredCallOnly: whichever way a request is completed
// (the API's complete, the console's form through Flow.Complete, the
// approval that auto-completes), the replay is built from the stored call
// alone: its method and raw target (a bare "?" kept as parked, never
// added), its host and headers, its body framed by Content-Length. Of the
// call that completes it only the Authorization travels (none on
// auto-complete); its query, Host, headers (an override among them),
// chunking, trailers, Expect and body do not. The attestation signs the
// stored target.
func TestReplayIsTheStoredCallOnly(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "p", "resource": input.request.raw_path,
	"approvers": [{"group": "approvers", "required": 1}],
	"complete": _complete}

default _complete := "manual"

_complete := "auto" if startswith(input.request.path, "/auto")
`), nil)
	addr, replays := recordingGateway(t, h)
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	fresh := h.TokenWith(jwt.MapClaims{"sub": "alice", "exp": time.Now().Add(time.Hour).Unix(), "jti": "a-fresh-token"})
	jwks := []byte(h.Do("GET", "/.approvals/.well-known/jwks.json", "", "").Raw)
	only := func(t *testing.T, before int) capturedReplay {
		t.Helper()
		all := replays.since(before)
		if len(all) != 1 {
			t.Fatalf("%d replays", len(all))
		}
		return all[0]
	}

	for _, target := range []string{"/scripts", "/scripts?", "/scripts?x=1"} {
		t.Run("API complete of "+target, func(t *testing.T) {
			id := parkRaw(t, addr, alice, target)
			h.Approve(bob, id)
			before := replays.count()
			status, answer := testkit.RawCall(t, addr, smuggled("POST", "/.approvals/api/v1/requests/"+id+"/complete?x=2&_method=DELETE", "complete.example", fresh, `{"notes":"done"}`))
			if status != http.StatusOK {
				t.Fatalf("complete: %d %s", status, answer)
			}
			checkReplay(t, only(t, before), id, target, "Bearer "+fresh, jwks)
		})
	}
	t.Run("API complete with a bare ?", func(t *testing.T) {
		id := parkRaw(t, addr, alice, "/scripts")
		h.Approve(bob, id)
		before := replays.count()
		if status, answer := testkit.RawCall(t, addr, smuggled("POST", "/.approvals/api/v1/requests/"+id+"/complete?", "complete.example", fresh, `{}`)); status != http.StatusOK {
			t.Fatalf("complete: %d %s", status, answer)
		}
		checkReplay(t, only(t, before), id, "/scripts", "Bearer "+fresh, jwks)
	})
	t.Run("the console's form (Flow.Complete)", func(t *testing.T) {
		id := parkRaw(t, addr, alice, "/scripts?")
		h.Approve(bob, id)
		before := replays.count()
		form := httptest.NewRequest("POST", "http://complete.example/.approvals/requests/"+id+"/complete?x=2", strings.NewReader("csrf=t&_method=DELETE&notes=x"))
		form.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		form.Header.Set("X-HTTP-Method-Override", "DELETE")
		form.Header.Set("Cookie", "approvals_session=s")
		form.TransferEncoding = []string{"chunked"}
		form.Trailer = http.Header{"X-Trailer-Smuggled": {"1"}}
		_ = form.ParseForm()
		who := &identity.Identity{Subject: "alice", Groups: []string{}}
		var flow approvals.Flow = h.Svc
		if err := flow.Complete(form, who, id, "Bearer "+fresh, replays.next); err != nil {
			t.Fatal(err)
		}
		checkReplay(t, only(t, before), id, "/scripts?", "Bearer "+fresh, jwks)
	})
	t.Run("auto-complete by the approval", func(t *testing.T) {
		id := parkRaw(t, addr, alice, "/auto?")
		before := replays.count()
		status, answer := testkit.RawCall(t, addr, smuggled("POST", "/.approvals/api/v1/requests/"+id+"/approve?x=2", "approve.example", bob, `{"notes":"ok"}`))
		if status != http.StatusOK || !strings.Contains(string(answer), `"status":"completed"`) {
			t.Fatalf("approve: %d %s", status, answer)
		}
		checkReplay(t, only(t, before), id, "/auto?", "", jwks)
	})
}

// TestApprovedByIsAStructuredFieldList: Approval-Approved-By is an RFC
// 9651 List of the approvers' subjects in approval order, Strings for
// ASCII and Display Strings beyond it, so that one approver named
// "eve, frank" is one member and not two.
func TestApprovedByIsAStructuredFieldList(t *testing.T) {
	h := approvalstest.New(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "p", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 3}]}
`), nil)
	alice := h.Token("alice")
	id := h.Park(alice, "POST", "/scripts", `{}`)
	approvers := []string{"eve, frank", "jos\u00e9", `say "hi" \ 100%`}
	for _, sub := range approvers {
		h.Approve(h.Token(sub, "approvers"), id)
	}
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")
	field := h.Backend.Mutating()[0].Header.Values("Approval-Approved-By")
	if len(field) != 1 || field[0] != `"eve, frank", %"jos%c3%a9", "say \"hi\" \\ 100%"` {
		t.Fatalf("Approval-Approved-By: %q", field)
	}
	list, err := httpsfv.UnmarshalList(field)
	if err != nil || len(list) != len(approvers) {
		t.Fatalf("%q parses as %v (%v)", field, list, err)
	}
	for i, m := range list {
		var got string
		switch v := m.(httpsfv.Item).Value.(type) {
		case string:
			got = v
		case httpsfv.DisplayString:
			got = string(v)
		default:
			t.Fatalf("member %d is a %T", i, v)
		}
		if got != approvers[i] {
			t.Errorf("member %d is %q, want %q", i, got, approvers[i])
		}
	}
}
