package approvals_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/attest"
	"github.com/approval-gateway/gateway/module/auditchain"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// auditLog is a harness with a few lifecycles in its audit log.
func auditLog(t *testing.T, mod func(*approvalstest.Options)) *approvalstest.Harness {
	t.Helper()
	h := approvalstest.New(t, testkit.WritePolicy(t, wipePolicy), mod)
	alice, carol, bob := h.Token("alice", "it-ops"), h.Token("carol", "approvers"), h.Token("bob", "approvers")
	for _, dev := range []string{"1", "2", "3"} {
		id := h.Park(alice, "POST", "/devices/"+dev+"/wipe", "")
		h.Approve(carol, id)
		h.Approve(bob, id)
		h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/complete", alice, ""), http.StatusCreated, "")
	}
	return h
}

// events are the stored audit events by seq, with their keys.
func events(t *testing.T, h *approvalstest.Harness) map[int64]*clientv3.Event {
	t.Helper()
	resp, err := h.Cli.Get(context.Background(), "/approvals/audit/", clientv3.WithPrefix())
	if err != nil {
		t.Fatal(err)
	}
	out := map[int64]*clientv3.Event{}
	for _, kv := range resp.Kvs {
		var l auditchain.Link
		_ = json.Unmarshal(kv.Value, &l)
		out[l.Seq] = &clientv3.Event{Kv: kv}
	}
	return out
}

// verifyOnline asks the API to verify the stored log.
func verifyOnline(t *testing.T, h *approvalstest.Harness) auditchain.Result {
	t.Helper()
	a := h.Expect(h.Do("GET", "/.approvals/api/v1/audit/verify", h.Token("erin", "auditors"), ""), http.StatusOK, "")
	var res auditchain.Result
	if err := json.Unmarshal([]byte(a.Raw), &res); err != nil {
		t.Fatal(err)
	}
	return res
}

// verifyExport exports the log through the API and verifies the file
// offline against the full JWKS, after edit changes it.
func verifyExport(t *testing.T, h *approvalstest.Harness, edit func([]string) []string) auditchain.Result {
	t.Helper()
	a := h.Expect(h.Do("GET", "/.approvals/api/v1/audit/export", h.Token("erin", "auditors"), ""), http.StatusOK, "")
	lines := strings.Split(strings.TrimSpace(a.Raw), "\n")
	if edit != nil {
		lines = edit(lines)
	}
	var set attest.JWKS
	if err := json.Unmarshal([]byte(h.Do("GET", "/.approvals/.well-known/jwks.json?all=true", "", "").Raw), &set); err != nil {
		t.Fatal(err)
	}
	res, err := auditchain.VerifyExport(strings.NewReader(strings.Join(lines, "\n")), set.Public())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func wantBad(t *testing.T, what string, res auditchain.Result, seq int64, reason string) {
	t.Helper()
	if res.OK || res.FirstBad == nil || res.FirstBad.Seq != seq || !strings.Contains(res.FirstBad.Reason, reason) {
		t.Errorf("%s: got %+v %+v, want seq %d %q", what, res, res.FirstBad, seq, reason)
	}
}

// TestAuditChainShowsTampering: each audit event is linked into one chain
// as it is written; editing an event in etcd (with or without its hash
// made again), removing one (inside the log or at its end), moving events
// between keys, reordering an export's lines or forging a checkpoint are
// each reported, online and offline, at the event where it happened.
func TestAuditChainShowsTampering(t *testing.T) {
	h := auditLog(t, nil)
	ctx := context.Background()
	if seq, err := h.Svc.Checkpoint(ctx); err != nil || seq != 15 {
		t.Fatalf("checkpoint at %d: %v", seq, err)
	}
	// One more lifecycle after the checkpoint.
	alice := h.Token("alice", "it-ops")
	id := h.Park(alice, "POST", "/devices/4/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusOK, "")

	if res := verifyOnline(t, h); !res.OK || res.Checked != 17 || res.Checkpoints != 1 {
		t.Fatalf("the untouched log: %+v %+v", res, res.FirstBad)
	}
	if res := verifyExport(t, h, nil); !res.OK || res.Checked != 17 || res.Checkpoints != 1 {
		t.Fatalf("the untouched export: %+v %+v", res, res.FirstBad)
	}

	evs := events(t, h)
	put := func(ev *clientv3.Event, value []byte) {
		t.Helper()
		if _, err := h.Cli.Put(ctx, string(ev.Kv.Key), string(value)); err != nil {
			t.Fatal(err)
		}
	}
	restore := func(seqs ...int64) {
		t.Helper()
		for _, s := range seqs {
			put(evs[s], evs[s].Kv.Value)
		}
		if res := verifyOnline(t, h); !res.OK {
			t.Fatalf("restored: %+v %+v", res, res.FirstBad)
		}
	}
	both := func(what string, seq int64, reason string) {
		t.Helper()
		wantBad(t, what+" (online)", verifyOnline(t, h), seq, reason)
		wantBad(t, what+" (export)", verifyExport(t, h, nil), seq, reason)
	}

	// The backend's answer changed.
	put(evs[5], bytes.Replace(evs[5].Kv.Value, []byte(`backend answered 201`), []byte(`backend answered 500`), 1))
	both("an edited event", 5, "edited")
	restore(5)

	// A member added a second time: readers differ on which one counts.
	put(evs[5], bytes.Replace(evs[5].Kv.Value, []byte(`"actor":"`), []byte(`"notes":"approved by phone","actor":"`), 1))
	both("an event with a repeated member", 5, "repeated")
	restore(5)

	// The same, with the event's hash made again: the next event still
	// holds the old one.
	var e map[string]any
	_ = json.Unmarshal(evs[5].Kv.Value, &e)
	e["actor"] = "mallory"
	delete(e, "hash")
	raw, _ := json.Marshal(e)
	e["hash"], _ = auditchain.Hash(raw)
	raw, _ = json.Marshal(e)
	put(evs[5], raw)
	both("an edited event with its hash made again", 5, "edited")
	restore(5)

	// A signed-over event edited: the checkpoint catches it even when the
	// whole rest of the chain was made again. (Here: the last event before
	// it, seq 15, rewritten with a new hash.)
	_ = json.Unmarshal(evs[15].Kv.Value, &e)
	e["notes"] = "nothing happened"
	delete(e, "hash")
	raw, _ = json.Marshal(e)
	e["hash"], _ = auditchain.Hash(raw)
	raw, _ = json.Marshal(e)
	put(evs[15], raw)
	both("an event the checkpoint vouches for", 15, "checkpoint")
	restore(15)

	// An event removed.
	if _, err := h.Cli.Delete(ctx, string(evs[7].Kv.Key)); err != nil {
		t.Fatal(err)
	}
	both("a removed event", 7, "removed")
	restore(7)

	// The last events removed: the chain's head (online) still counts
	// them; offline, only what a checkpoint vouches for can be missed.
	if _, err := h.Cli.Delete(ctx, string(evs[17].Kv.Key)); err != nil {
		t.Fatal(err)
	}
	wantBad(t, "the last event removed (online)", verifyOnline(t, h), 17, "removed from the end")
	restore(17)
	for _, s := range []int64{15, 16, 17} {
		if _, err := h.Cli.Delete(ctx, string(evs[s].Kv.Key)); err != nil {
			t.Fatal(err)
		}
	}
	wantBad(t, "events a checkpoint vouches for removed from the end (export)", verifyExport(t, h, nil), 15, "removed from the end")
	restore(15, 16, 17)

	// The log's start removed up to a checkpoint: a checkpoint vouches for
	// its seq, but only pruning's anchor may start the log.
	for s := int64(1); s <= 15; s++ {
		if _, err := h.Cli.Delete(ctx, string(evs[s].Kv.Key)); err != nil {
			t.Fatal(err)
		}
	}
	both("the log's start removed", 16, "removed from its start")
	restore(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15)

	// Two events swapped between their keys: the log's time order changed.
	put(evs[9], evs[10].Kv.Value)
	put(evs[10], evs[9].Kv.Value)
	wantBad(t, "events moved between keys (online)", verifyOnline(t, h), 9, "moved")
	restore(9, 10)

	// An export's lines reordered.
	wantBad(t, "an export reordered", verifyExport(t, h, func(lines []string) []string {
		lines[3], lines[4] = lines[4], lines[3] // line 0 is the checkpoint: seq 3 and 4
		return lines
	}), 3, "reordered")

	// A checkpoint signed by a key that is not the gateway's.
	var forged attest.Set
	if _, err := forged.Maintain(time.Now(), attest.Schedule{}); err != nil {
		t.Fatal(err)
	}
	tok, _ := forged.SignCheckpoint("approval-gateway", 16, strings.Repeat("0", 64), false, time.Now())
	if _, err := h.Cli.Put(ctx, "/approvals/audit-chain/checkpoints/00000000000000000016", tok); err != nil {
		t.Fatal(err)
	}
	both("a forged checkpoint", 16, "does not verify")
}

// TestAuditPruningKeepsTheChainVerifiable: pruning old events leaves a
// signed checkpoint for the last one it removed, which anchors the log's
// new start; without it, the start is reported.
func TestAuditPruningKeepsTheChainVerifiable(t *testing.T) {
	h := auditLog(t, func(o *approvalstest.Options) { o.AuditRetention = time.Hour })
	h.Clock.Add(2 * time.Hour)
	alice := h.Token("alice", "it-ops")
	id := h.Park(alice, "POST", "/devices/4/wipe", "")
	h.Expect(h.Do("POST", "/.approvals/api/v1/requests/"+id+"/cancel", alice, ""), http.StatusOK, "")
	st, err := h.Svc.Sweep(context.Background())
	if err != nil || st.AuditPruned != 15 {
		t.Fatalf("pruned %d: %v", st.AuditPruned, err)
	}
	if res := verifyOnline(t, h); !res.OK || res.Checked != 2 || res.Checkpoints != 1 {
		t.Fatalf("after pruning: %+v %+v", res, res.FirstBad)
	}
	if res := verifyExport(t, h, nil); !res.OK || res.Checked != 2 {
		t.Fatalf("the export after pruning: %+v %+v", res, res.FirstBad)
	}
	if _, err := h.Cli.Delete(context.Background(), "/approvals/audit-chain/checkpoints/", clientv3.WithPrefix()); err != nil {
		t.Fatal(err)
	}
	wantBad(t, "no anchor", verifyOnline(t, h), 16, "removed from its start")
}

var _ = approvals.DefaultCheckpointInterval
