package record

import "testing"

// TestRefusalsFoldSubjectsGrantsDoNot: a spelling that could be the
// requester (another case, NFD, fullwidth, white space) cannot approve
// her own request or approve twice toward a quorum, but it is not the
// requester either: it may not cancel or complete, and is no party unless
// it approves by group. With CaseSensitive, ids differing only in case are
// different people, and other variants still fold.
func TestRefusalsFoldSubjectsGrantsDoNot(t *testing.T) {
	as := func(sub string, exact bool, groups ...string) Principal {
		return Principal{Subject: sub, Groups: groups, CaseSensitive: exact}
	}
	approveTwice := func(first, second string, exact bool) func(r *Record) error {
		return func(r *Record) error {
			if err := r.Approve(as(first, exact, "approvers"), ApproveInput{}, t0); err != nil {
				return err
			}
			return r.Approve(as(second, exact, "approvers"), ApproveInput{}, t0)
		}
	}
	tests := []struct {
		name string
		run  func(r *Record) error
		want string
	}{
		{"requester in upper case approves", func(r *Record) error { return r.Approve(as("Alice", false, "approvers"), ApproveInput{}, t0) }, CodeSelfApproval},
		{"requester with a folded letter approves", func(r *Record) error {
			r.Requester.Subject = "straße@example.com"
			return r.Approve(as("STRASSE@EXAMPLE.COM", false, "approvers"), ApproveInput{}, t0)
		}, CodeSelfApproval},
		{"requester in NFD approves", func(r *Record) error {
			r.Requester.Subject = "jos\u00e9"
			return r.Approve(as("jose\u0301", false, "approvers"), ApproveInput{}, t0)
		}, CodeSelfApproval},
		{"requester in fullwidth approves", func(r *Record) error { return r.Approve(as("\uff41lice", false, "approvers"), ApproveInput{}, t0) }, CodeSelfApproval},
		{"requester with a trailing space rejects", func(r *Record) error { return r.Reject(as("alice ", false, "approvers"), "no", t0) }, CodeSelfApproval},
		{"requester in another case rejects", func(r *Record) error { return r.Reject(as("ALICE", false, "approvers"), "no", t0) }, CodeSelfApproval},
		{"bob and Bob toward a quorum", approveTwice("bob", "Bob", false), CodeAlreadyApproved},
		{"NFC and NFD toward a quorum", approveTwice("zo\u00eb", "zoe\u0308", false), CodeAlreadyApproved},
		{"bob and fullwidth bob toward a quorum", approveTwice("bob", "\uff42\uff4f\uff42", false), CodeAlreadyApproved},
		{"bob and ' bob' toward a quorum", approveTwice("bob", " bob", false), CodeAlreadyApproved},
		{"Kelvin sign toward a quorum", approveTwice("kelvin", "\u212aelvin", false), CodeAlreadyApproved},
		{"the requester in another case cancels", func(r *Record) error { return r.Cancel(as("ALICE", false), "", t0) }, CodeNotTheRequester},
		{"the requester with a trailing space cancels", func(r *Record) error { return r.Cancel(as("alice ", false), "", t0) }, CodeNotTheRequester},
		{"the requester herself cancels", func(r *Record) error { return r.Cancel(as("alice", false), "", t0) }, ""},
		{"case-sensitive: another id approves", func(r *Record) error { return r.Approve(as("Alice", true, "approvers"), ApproveInput{}, t0) }, ""},
		{"case-sensitive: two ids toward a quorum", approveTwice("bob", "Bob", true), ""},
		{"case-sensitive: NFD still folds", approveTwice("zo\u00eb", "zoe\u0308", true), CodeAlreadyApproved},
		{"case-sensitive: white space still folds", approveTwice("Bob", "Bob ", true), CodeAlreadyApproved},
		{"case-sensitive: another id cancels", func(r *Record) error { return r.Cancel(as("ALICE", true), "", t0) }, CodeNotTheRequester},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord(Requirement{Group: "approvers", Required: 2})
			if got := code(tc.run(r)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	for _, p := range []Principal{as("ALICE", false), as("Alice", false), as("alice ", false), as("\uff41lice", false), as("ALICE", true)} {
		if newRecord().IsParty(p, false) {
			t.Errorf("%q (no groups) is a party to alice's request", p.Subject)
		}
	}
	if !newRecord().IsParty(as("alice", false), false) || !newRecord().IsParty(as("Alice", false, "approvers"), false) {
		t.Fatal("the requester, or an approver by group, is no party")
	}
}
