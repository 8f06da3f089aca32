package notify

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

// receiver is a webhook endpoint that checks signatures and fails the
// first deliveries it is told to.
type receiver struct {
	mu       sync.Mutex
	attempts map[string]int // by CloudEvent id
	ok       []map[string]any
	failures int
	bad      int
	*httptest.Server
}

func newReceiver(t *testing.T, secret string, failFirst int) *receiver {
	rc := &receiver{attempts: map[string]int{}, failures: failFirst}
	rc.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		rc.mu.Lock()
		defer rc.mu.Unlock()
		if err := VerifySignature(secret, r.Header.Get(SignatureHeader), body, time.Now(), 5*time.Minute); err != nil ||
			r.Header.Get("Content-Type") != "application/cloudevents+json" {
			rc.bad++
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		var ev map[string]any
		_ = json.Unmarshal(body, &ev)
		id := ev["id"].(string)
		rc.attempts[id]++
		if rc.failures > 0 {
			rc.failures--
			http.Error(w, "try again", http.StatusInternalServerError)
			return
		}
		rc.ok = append(rc.ok, ev)
	}))
	t.Cleanup(rc.Close)
	return rc
}

func TestWebhooksOnceFromTwoGateways(t *testing.T) {
	const secret = "whsec-test"
	rc := newReceiver(t, secret, 2)
	h := approvalstest.New(t, "", nil)
	targets := []Webhook{{URL: rc.URL, Secret: secret}}
	core, otherLogs := observer.New(zap.InfoLevel)
	// Both gateways run a notifier; one is elected and delivers.
	testkit.Run(t, notifier(h, targets, Backoff{Base: 20 * time.Millisecond}, h.Opts.Logger).Run)
	testkit.Run(t, notifier(h, targets, Backoff{Base: 20 * time.Millisecond}, zap.New(core)).Run)
	elected := func() int {
		return h.Logs.FilterMessage("elected as the notifier").Len() + otherLogs.FilterMessage("elected as the notifier").Len()
	}
	testkit.WaitFor(t, func() bool { return elected() == 1 })
	time.Sleep(200 * time.Millisecond) // the other campaigns and waits

	alice, bob := h.Token("alice"), h.Token("bob", "approvers")
	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")

	testkit.WaitFor(t, func() bool { rc.mu.Lock(); defer rc.mu.Unlock(); return len(rc.ok) == 3 })
	time.Sleep(300 * time.Millisecond) // no duplicates trickle in
	if elected() != 1 {
		t.Fatal("both gateways were elected")
	}
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var types []string
	for _, ev := range rc.ok {
		types = append(types, ev["type"].(string))
		if ev["specversion"] != "1.0" || ev["subject"] != id || ev["source"] != "approval-gateway/.approvals" {
			t.Fatalf("not a CloudEvent of the request: %v", ev)
		}
		data := ev["data"].(map[string]any)
		if data["request"].(map[string]any)["id"] != id || !strings.HasPrefix(data["event"].(map[string]any)["link"].(string), "https://admin.example.com/.approvals/requests/") {
			t.Fatalf("event data %v", data)
		}
	}
	if strings.Join(types, " ") != record.EventParked+" "+record.EventApproved+" "+record.EventCompleted {
		t.Fatalf("events %v", types)
	}
	first := rc.ok[0]["id"].(string)
	if rc.attempts[first] != 3 {
		t.Fatalf("first event attempted %d times, want 3 (two 500s, then 200)", rc.attempts[first])
	}
	for _, ev := range rc.ok[1:] {
		if n := rc.attempts[ev["id"].(string)]; n != 1 {
			t.Fatalf("event %s delivered %d times", ev["id"], n)
		}
	}
	if rc.bad != 0 {
		t.Fatalf("%d deliveries with a bad signature", rc.bad)
	}
	// The delivery log shows the attempts, to admins.
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/notify/deliveries", h.Token("audrey", "auditors"), ""), http.StatusOK, "")
	logs := res.Body["deliveries"].([]any)
	last := logs[len(logs)-1].(map[string]any)
	if len(logs) != 3 || last["event_id"] != first || len(last["attempts"].([]any)) != 3 || last["delivered"] != true {
		t.Fatalf("delivery log %s", res.Raw)
	}
}

// notifier delivers the events of h's store to targets, as a gateway of
// its prefix at https://admin.example.com, logging to logger.
func notifier(h *approvalstest.Harness, targets []Webhook, b Backoff, logger *zap.Logger) *Notifier {
	return New(Options{Store: h.Opts.Store, Targets: targets, Source: "approval-gateway" + h.Svc.Prefix,
		Links: "https://admin.example.com" + h.Svc.Prefix, Backoff: b, Logger: logger})
}

func TestSignature(t *testing.T) {
	now := time.Unix(1700000000, 0)
	body := []byte(`{"a":1}`)
	h := Sign("s3cret", now, body)
	if !strings.HasPrefix(h, "t=1700000000,v1=") {
		t.Fatalf("header %s", h)
	}
	if err := VerifySignature("s3cret", h, body, now, time.Minute); err != nil {
		t.Fatal(err)
	}
	for name, err := range map[string]error{
		"other secret": VerifySignature("other", h, body, now, time.Minute),
		"other body":   VerifySignature("s3cret", h, []byte(`{"a":2}`), now, time.Minute),
		"too old":      VerifySignature("s3cret", h, body, now.Add(time.Hour), time.Minute),
		"malformed":    VerifySignature("s3cret", "v1=abc", body, now, time.Minute),
	} {
		if err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestSlackText(t *testing.T) {
	rec := &record.Record{Operation: record.Operation{Method: "POST", Path: "/devices/2/wipe"}, Policy: "devices",
		Requester: record.Principal{Subject: "alice"}, Justification: "INC-4711 stolen"}
	ev := record.Notification{Type: record.EventRejected, Actor: "bob", Notes: "wrong device", Link: "https://admin.example.com/.approvals/requests/x"}
	got := slackText(ev, rec)
	for _, want := range []string{"Request rejected by bob", "POST /devices/2/wipe", `"INC-4711 stolen"`, `Notes: "wrong device"`, "<https://admin.example.com/.approvals/requests/x|Open the request>"} {
		if !strings.Contains(got, want) {
			t.Errorf("slack text lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(strings.ToLower(got), "/approve") {
		t.Error("the message links straight to an approval")
	}
}

func receivedTypes(rc *receiver) []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	var out []string
	for _, ev := range rc.ok {
		out = append(out, ev["type"].(string))
	}
	return out
}

// TestNotificationRouting sends approver events to the approver groups'
// target and requester events to the requester's, with a reminder before
// the request expires.
func TestNotificationRouting(t *testing.T) {
	approvers := newReceiver(t, "s1", 0)
	alices := newReceiver(t, "s2", 0)
	everything := newReceiver(t, "s3", 0)
	h := approvalstest.New(t, "", func(o *approvalstest.Options) {
		o.ApprovalExpiry = 2 * time.Hour
		o.ReminderLead = time.Hour
	})
	testkit.Run(t, notifier(h, []Webhook{
		{URL: approvers.URL, Secret: "s1", Groups: []string{"approvers"}},
		{URL: alices.URL, Secret: "s2", Requesters: []string{"alice"}},
		{URL: everything.URL, Secret: "s3"},
	}, Backoff{Base: 10 * time.Millisecond}, h.Opts.Logger).Run)
	testkit.WaitFor(t, func() bool { return h.Logs.FilterMessage("elected as the notifier").Len() == 1 })
	alice, bob := h.Token("alice"), h.Token("bob", "approvers")

	id := h.Park(alice, "DELETE", "/apps/1", "")
	h.Park(h.Token("carol"), "DELETE", "/apps/2", "") // carol's: not for alice's target
	h.Clock.Add(30 * time.Minute)
	if st, _ := h.Svc.Sweep(context.Background()); st.Reminded != 0 {
		t.Fatal("reminded before the lead time")
	}
	h.Clock.Add(45 * time.Minute)
	if st, _ := h.Svc.Sweep(context.Background()); st.Reminded != 2 {
		t.Fatalf("reminders: %+v", st)
	}
	if st, _ := h.Svc.Sweep(context.Background()); st.Reminded != 0 {
		t.Fatal("reminded twice")
	}
	h.Approve(bob, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")

	want := map[*receiver]string{
		approvers:  strings.Join([]string{record.EventParked, record.EventParked, record.EventExpiring, record.EventExpiring}, " "),
		alices:     strings.Join([]string{record.EventApproved, record.EventCompleted}, " "),
		everything: strings.Join([]string{record.EventParked, record.EventParked, record.EventExpiring, record.EventExpiring, record.EventApproved, record.EventCompleted}, " "),
	}
	for rc, w := range want {
		testkit.WaitFor(t, func() bool { return strings.Join(receivedTypes(rc), " ") == w })
	}
	res := h.Record(alice, id)
	if !strings.Contains(approvalstest.HistoryActions(res), "gateway:reminder") || res.Str("status") != "completed" {
		t.Fatalf("history %s", approvalstest.HistoryActions(res))
	}
}

// TestWebhookRedirectsAreNotFollowed: a target that redirects has failed;
// the redirect's destination never receives the event.
func TestWebhookRedirectsAreNotFollowed(t *testing.T) {
	var hit sync.Mutex
	elsewhere := 0
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hit.Lock()
		elsewhere++
		hit.Unlock()
	}))
	defer other.Close()
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, other.URL, http.StatusTemporaryRedirect)
	}))
	defer redirecting.Close()
	h := approvalstest.New(t, "", nil)
	testkit.Run(t, notifier(h, []Webhook{{URL: redirecting.URL, Secret: "s"}}, Backoff{Base: 5 * time.Millisecond, Attempts: 2}, h.Opts.Logger).Run)
	testkit.WaitFor(t, func() bool { return h.Logs.FilterMessage("elected as the notifier").Len() == 1 })
	h.Park(h.Token("alice"), "DELETE", "/apps/1", "")
	testkit.WaitFor(t, func() bool { return h.Logs.FilterMessage("webhook delivery given up").Len() == 1 })
	hit.Lock()
	defer hit.Unlock()
	if elsewhere != 0 {
		t.Fatal("a redirect was followed")
	}
	res := h.Expect(h.Do("GET", "/.approvals/api/v1/notify/deliveries", h.Token("audrey", "auditors"), ""), http.StatusOK, "")
	if !strings.Contains(res.Raw, `"status":307`) || !strings.Contains(res.Raw, `"delivered":false`) {
		t.Fatalf("delivery log %s", res.Raw)
	}
}
