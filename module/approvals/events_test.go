package approvals_test

import (
	"bufio"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/record"
)

type sseEvent struct {
	ID, Type string
	Data     map[string]any
}

// subscribe opens the event stream as tok (resuming after last, if set)
// and returns the events as they come, and a function that disconnects.
func subscribe(h *approvalstest.Harness, tok, last string) (<-chan sseEvent, func()) {
	h.T.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, "GET", h.GW.URL+"/.approvals/api/v1/events", nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	if last != "" {
		req.Header.Set("Last-Event-ID", last)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK {
		cancel()
		h.T.Fatalf("subscribe: %v %v", resp, err)
	}
	out := make(chan sseEvent, 100)
	go func() {
		defer resp.Body.Close()
		defer close(out)
		sc := bufio.NewScanner(resp.Body)
		var ev sseEvent
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "id: "):
				ev.ID = strings.TrimPrefix(line, "id: ")
			case strings.HasPrefix(line, "event: "):
				ev.Type = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				_ = json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &ev.Data)
			case line == "" && ev.Type != "":
				out <- ev
				ev = sseEvent{}
			}
		}
	}()
	return out, cancel
}

func next(t *testing.T, ch <-chan sseEvent) sseEvent {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("stream closed")
		}
		return ev
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	return sseEvent{}
}

func TestEventStreamResumes(t *testing.T) {
	h := approvalstest.New(t, "", nil)
	alice, bob, carol, eve := h.Token("alice"), h.Token("bob", "approvers"), h.Token("carol", "approvers"), h.Token("eve", "sales")
	bobs, disconnect := subscribe(h, bob, "")
	eves, stopEve := subscribe(h, eve, "")
	defer stopEve()

	id := h.Park(alice, "DELETE", "/apps/1", "")
	ev := next(t, bobs)
	if ev.Type != record.EventParked || ev.Data["request_id"] != id || !strings.HasSuffix(ev.Data["link"].(string), "/.approvals/requests/"+id) {
		t.Fatalf("first event %+v", ev)
	}
	last := ev.ID
	disconnect()

	// While bob is away: an approval, then a completion.
	h.Approve(carol, id)
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusOK, "")

	// Resuming after the last id seen delivers exactly what was missed.
	bobs, disconnect = subscribe(h, bob, last)
	defer disconnect()
	if ev := next(t, bobs); ev.Type != record.EventApproved || ev.Data["actor"] != "carol" {
		t.Fatalf("after resume: %+v", ev)
	}
	if ev := next(t, bobs); ev.Type != record.EventCompleted || ev.Data["status"] != "completed" {
		t.Fatalf("after resume: %+v", ev)
	}

	// eve is no party: she saw nothing.
	select {
	case ev := <-eves:
		t.Fatalf("a non-party saw %+v", ev)
	case <-time.After(200 * time.Millisecond):
	}

	// After compaction, a recent id is still served from the gateway's
	// audit feed, which kept what followed it; an id from before the feed
	// began is answered with a reset: re-list.
	rev, err := h.Opts.Store.Revision(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.Cli.Compact(context.Background(), rev); err != nil {
		t.Fatal(err)
	}
	recent, stop := subscribe(h, bob, last)
	defer stop()
	if ev := next(t, recent); ev.Type != record.EventApproved || ev.Data["actor"] != "carol" {
		t.Fatalf("after compaction, resuming from a recent id: %+v", ev)
	}
	old, stop := subscribe(h, bob, "1-0")
	defer stop()
	if ev := next(t, old); ev.Type != "reset" {
		t.Fatalf("after compaction: %+v", ev)
	}
	h.Expect(h.Do("GET", "/.approvals/api/v1/events", bob, "", "Last-Event-ID", "garbage"), http.StatusBadRequest, approvals.CodeBadRequest)
}
