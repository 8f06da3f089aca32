package record

import (
	"errors"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 11, 1, 9, 0, 0, 0, time.UTC)

var (
	alice = Principal{Subject: "alice", Groups: []string{"approvers", "admins"}}
	bob   = Principal{Subject: "bob", Groups: []string{"approvers"}}
	carol = Principal{Subject: "carol", Groups: []string{"approvers", "security"}}
	dave  = Principal{Subject: "dave", Groups: []string{"security"}}
	erin  = Principal{Subject: "erin", Groups: []string{"sales"}}
)

func newRecord(reqs ...Requirement) *Record {
	if len(reqs) == 0 {
		reqs = []Requirement{{Group: "approvers", Required: 1}}
	}
	op := Operation{Method: "DELETE", Path: "/apps/42"}
	return &Record{
		ID: "r1", Status: NeedsApproval, Requester: alice, Justification: "cleanup",
		Resource: "apps/42", Operation: op, PayloadSHA256: PayloadHash(op, nil),
		Approvers: NewRequirements(reqs), CreatedAt: t0,
	}
}

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "other:" + err.Error()
	}
	return ""
}

// act applies one action as a suitable actor: the requester for cancel and
// claim, bob (an approver) for approve and reject.
func act(r *Record, a Action) error {
	switch a {
	case ActionApprove:
		return r.Approve(bob, ApproveInput{}, t0)
	case ActionReject:
		return r.Reject(bob, "no", t0)
	case ActionCancel:
		return r.Cancel(alice, "", t0)
	case ActionClaim:
		return r.Claim(alice, t0)
	case ActionFinish:
		return r.Finish(Result{Status: 200}, t0)
	case ActionFail:
		return r.Fail(Result{Error: "x"}, t0)
	case ActionExpire:
		return r.Expire(t0)
	}
	panic(a)
}

func TestEveryActionFromEveryStatus(t *testing.T) {
	actions := []Action{ActionApprove, ActionReject, ActionCancel, ActionClaim, ActionFinish, ActionFail, ActionExpire}
	for _, from := range Statuses {
		for _, a := range actions {
			t.Run(string(from)+"/"+string(a), func(t *testing.T) {
				r := newRecord()
				r.Status = from
				err := act(r, a)
				if Allowed(a, from) {
					if err != nil {
						t.Fatalf("allowed by the table but refused: %v", err)
					}
					if !allowedTo(a, from, r.Status) {
						t.Fatalf("moved to %s, which the table does not allow", r.Status)
					}
					if len(r.History) != 1 || r.History[0].From != from || r.History[0].To != r.Status {
						t.Fatalf("history not recorded: %+v", r.History)
					}
					return
				}
				var e *Error
				if !errors.As(err, &e) || e.Code != CodeInvalidTransition || e.Status != from {
					t.Fatalf("want invalid_transition naming %s, got %v", from, err)
				}
				if r.Status != from || len(r.History) != 0 {
					t.Fatalf("a refused action changed the record: %s %+v", r.Status, r.History)
				}
			})
		}
	}
}

func TestTerminalStatusesHaveNoWayOut(t *testing.T) {
	for _, tr := range Transitions {
		if tr.From.Terminal() {
			t.Errorf("transition %v leaves terminal status %s", tr.Action, tr.From)
		}
	}
	for _, s := range Statuses {
		if s.Pending() == s.Terminal() {
			t.Errorf("%s must be either pending or terminal", s)
		}
	}
}

func TestWhoMayAct(t *testing.T) {
	tests := []struct {
		name string
		do   func(r *Record) error
		code string
	}{
		{"requester approves own request", func(r *Record) error { return r.Approve(alice, ApproveInput{}, t0) }, CodeSelfApproval},
		{"requester rejects own request", func(r *Record) error { return r.Reject(alice, "x", t0) }, CodeSelfApproval},
		{"non-member approves", func(r *Record) error { return r.Approve(erin, ApproveInput{}, t0) }, CodeNotAnApprover},
		{"non-member rejects", func(r *Record) error { return r.Reject(erin, "x", t0) }, CodeNotAnApprover},
		{"reject without notes", func(r *Record) error { return r.Reject(bob, "  ", t0) }, CodeNotesRequired},
		{"approver cancels", func(r *Record) error { return r.Cancel(bob, "", t0) }, CodeNotTheRequester},
		{"approver completes", func(r *Record) error {
			if err := r.Approve(bob, ApproveInput{}, t0); err != nil {
				return err
			}
			return r.Claim(bob, t0)
		}, CodeNotTheRequester},
		{"stale payload hash", func(r *Record) error {
			return r.Approve(bob, ApproveInput{PayloadSHA256: strings.Repeat("0", 64)}, t0)
		}, CodeStalePayload},
		{"matching payload hash", func(r *Record) error {
			return r.Approve(bob, ApproveInput{PayloadSHA256: strings.ToUpper(r.PayloadSHA256)}, t0)
		}, ""},
		{"notes required by config", func(r *Record) error { return r.Approve(bob, ApproveInput{RequireNotes: true}, t0) }, CodeNotesRequired},
		{"approver approves", func(r *Record) error { return r.Approve(bob, ApproveInput{Notes: "ok"}, t0) }, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord()
			if got := code(tc.do(r)); got != tc.code {
				t.Fatalf("got %q, want %q", got, tc.code)
			}
		})
	}
}

func TestQuorum(t *testing.T) {
	two := func(r *Record) { r.Approvers = NewRequirements([]Requirement{{Group: "approvers", Required: 2}}) }
	and := func(r *Record) {
		r.Approvers = NewRequirements([]Requirement{{Group: "approvers", Required: 1}, {Group: "security", Required: 1}})
	}
	tests := []struct {
		name   string
		setup  func(r *Record)
		by     []Principal
		codes  []string
		status Status
	}{
		{"one of one", nil, []Principal{bob}, []string{""}, Approved},
		{"2-of-N needs two", two, []Principal{bob}, []string{""}, NeedsApproval},
		{"2-of-N met by two", two, []Principal{bob, carol}, []string{"", ""}, Approved},
		{"same identity twice counts once", two, []Principal{bob, bob}, []string{"", CodeAlreadyApproved}, NeedsApproval},
		{"requester in the group never counts", two, []Principal{alice, bob}, []string{CodeSelfApproval, ""}, NeedsApproval},
		{"AND of groups: one group is not enough", and, []Principal{bob}, []string{""}, NeedsApproval},
		{"AND of groups: second member of a met group", and, []Principal{bob, alice}, []string{"", CodeSelfApproval}, NeedsApproval},
		{"AND of groups met", and, []Principal{bob, dave}, []string{"", ""}, Approved},
		// carol is in both groups: she counts once, for one of them.
		{"identity in two groups fills one", and, []Principal{carol}, []string{""}, NeedsApproval},
		{"identity in two groups, then a member of the other", and, []Principal{carol, dave}, []string{"", ""}, Approved},
		// carol was first counted for approvers; bob can only fill approvers,
		// so carol's approval moves to security and both count.
		{"identity in two groups is reassigned to make room", and, []Principal{carol, bob}, []string{"", ""}, Approved},
		{"met group refuses an extra approval", and, []Principal{bob, dave, carol}, []string{"", "", CodeInvalidTransition}, Approved},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord()
			if tc.setup != nil {
				tc.setup(r)
			}
			for i, p := range tc.by {
				if got := code(r.Approve(p, ApproveInput{}, t0.Add(time.Duration(i)*time.Minute))); got != tc.codes[i] {
					t.Fatalf("approval %d by %s: got %q, want %q", i, p.Subject, got, tc.codes[i])
				}
			}
			if r.Status != tc.status {
				t.Fatalf("status %s, want %s", r.Status, tc.status)
			}
			counted := 0
			for _, q := range r.Approvers {
				counted += len(q.Approvals)
				if q.Remaining != max(0, q.Required-len(q.Approvals)) {
					t.Fatalf("remaining %d for %+v", q.Remaining, q)
				}
				for _, a := range q.Approvals {
					if a.Group != q.Group {
						t.Fatalf("approval by %s filed under %s but says %s", a.Subject, q.Group, a.Group)
					}
				}
			}
			want := 0
			for _, c := range tc.codes {
				if c == "" {
					want++
				}
			}
			if counted != want {
				t.Fatalf("%d approvals counted, want %d", counted, want)
			}
		})
	}
}

func TestRequirementMetBeforeQuorum(t *testing.T) {
	r := newRecord(Requirement{Group: "approvers", Required: 1}, Requirement{Group: "security", Required: 1})
	if err := r.Approve(bob, ApproveInput{}, t0); err != nil {
		t.Fatal(err)
	}
	// alice is the requester, so use another approvers-only member.
	frank := Principal{Subject: "frank", Groups: []string{"approvers"}}
	if got := code(r.Approve(frank, ApproveInput{}, t0)); got != CodeRequirementMet {
		t.Fatalf("got %q, want requirement_met", got)
	}
	if len(r.Approvers[0].Approvals) != 1 || len(r.History) != 1 {
		t.Fatalf("refused approval changed the record: %+v", r.Approvers)
	}
}

func TestApprovedByKeepsApprovalOrder(t *testing.T) {
	r := newRecord(Requirement{Group: "security", Required: 1}, Requirement{Group: "approvers", Required: 1})
	if err := r.Approve(bob, ApproveInput{}, t0); err != nil {
		t.Fatal(err)
	}
	if err := r.Approve(dave, ApproveInput{}, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(r.ApprovedBy(), ", "); got != "bob, dave" {
		t.Fatalf("approved by %q", got)
	}
}

func TestPayloadHashCoversEveryPart(t *testing.T) {
	base := Operation{Method: "POST", Host: "h", Path: "/a", RawQuery: "x=1", Headers: map[string][]string{"Content-Type": {"application/json"}}}
	h := PayloadHash(base, []byte("{}"))
	variants := []func(o *Operation, b *[]byte){
		func(o *Operation, b *[]byte) { o.Method = "PUT" },
		func(o *Operation, b *[]byte) { o.Host = "g" },
		func(o *Operation, b *[]byte) { o.Path = "/b" },
		func(o *Operation, b *[]byte) { o.RawQuery = "x=2" },
		func(o *Operation, b *[]byte) { o.Headers = map[string][]string{"Content-Type": {"text/plain"}} },
		func(o *Operation, b *[]byte) { *b = []byte("{ }") },
		// moving bytes between parts must change the hash too
		func(o *Operation, b *[]byte) { o.Path = "/a" + "x=1"; o.RawQuery = "" },
	}
	for i, v := range variants {
		o, b := base, []byte("{}")
		v(&o, &b)
		if PayloadHash(o, b) == h {
			t.Errorf("variant %d has the same hash", i)
		}
	}
	if PayloadHash(base, []byte("{}")) != h {
		t.Error("hash is not deterministic")
	}
	// A bare "?" is part of the call: "/a?" and "/a" are not one payload,
	// nor is a bare "?" the same as a wire method or raw path of "?".
	plain := Operation{Method: "POST", Path: "/a"}
	bare := plain
	bare.ForceQuery = true
	odd := plain
	odd.RawPath = "?"
	hashes := map[string]bool{PayloadHash(plain, nil): true, PayloadHash(bare, nil): true, PayloadHash(odd, nil): true}
	if len(hashes) != 3 {
		t.Error("a bare ? does not change the payload hash")
	}
	if plain.Target() != "/a" || bare.Target() != "/a?" {
		t.Errorf("targets %q and %q", plain.Target(), bare.Target())
	}
}

// TestCanAgreesWithTheActions: for every status, action and kind of
// person, Can says exactly what taking the action says.
func TestCanAgreesWithTheActions(t *testing.T) {
	do := map[Action]func(r *Record, p Principal) error{
		ActionApprove: func(r *Record, p Principal) error { return r.Approve(p, ApproveInput{}, t0) },
		ActionReject:  func(r *Record, p Principal) error { return r.Reject(p, "no", t0) },
		ActionCancel:  func(r *Record, p Principal) error { return r.Cancel(p, "", t0) },
		ActionClaim:   func(r *Record, p Principal) error { return r.Claim(p, t0) },
	}
	for _, st := range Statuses {
		for action, act := range do {
			for _, p := range []Principal{alice, bob, carol, erin, {Subject: "ALICE", Groups: []string{"approvers"}}} {
				r := newRecord(Requirement{Group: "approvers", Required: 2})
				r.Status = st
				if st == NeedsApproval && p.Subject == "carol" {
					_ = r.Approve(carol, ApproveInput{}, t0) // carol has approved already
				}
				want := code(act(clone(r), p))
				if got := code(r.Can(action, p)); got != want {
					t.Errorf("%s by %s on %s: Can says %q, the action %q", action, p.Subject, st, got, want)
				}
			}
		}
	}
}

func clone(r *Record) *Record {
	c := *r
	c.Approvers = append([]Requirement(nil), r.Approvers...)
	for i := range c.Approvers {
		c.Approvers[i].Approvals = append([]Approval(nil), r.Approvers[i].Approvals...)
	}
	c.History = append([]Event(nil), r.History...)
	return &c
}
