package record

import "testing"

// TestSubjectsAreComparedByCaseFolding: one person spelt in another case
// (as an identity provider passes on an e-mail address, UPN or user name)
// cannot approve their own request, approve twice toward a quorum, or be
// told apart from the requester; with CaseSensitive, opaque ids that
// differ only in case are different people.
func TestSubjectsAreComparedByCaseFolding(t *testing.T) {
	as := func(sub string, exact bool, groups ...string) Principal {
		return Principal{Subject: sub, Groups: groups, CaseSensitive: exact}
	}
	two := Requirement{Group: "approvers", Required: 2}
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
		{"requester in another case rejects", func(r *Record) error { return r.Reject(as("ALICE", false, "approvers"), "no", t0) }, CodeSelfApproval},
		{"the same approver twice toward a quorum", func(r *Record) error {
			if err := r.Approve(as("bob", false, "approvers"), ApproveInput{}, t0); err != nil {
				return err
			}
			return r.Approve(as("Bob", false, "approvers"), ApproveInput{}, t0)
		}, CodeAlreadyApproved},
		{"the requester in another case cancels", func(r *Record) error { return r.Cancel(as("ALICE", false), "", t0) }, ""},
		{"case-sensitive: another id approves", func(r *Record) error { return r.Approve(as("Alice", true, "approvers"), ApproveInput{}, t0) }, ""},
		{"case-sensitive: two ids toward a quorum", func(r *Record) error {
			if err := r.Approve(as("bob", true, "approvers"), ApproveInput{}, t0); err != nil {
				return err
			}
			return r.Approve(as("Bob", true, "approvers"), ApproveInput{}, t0)
		}, ""},
		{"case-sensitive: another id cancels", func(r *Record) error { return r.Cancel(as("ALICE", true), "", t0) }, CodeNotTheRequester},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := newRecord(two)
			if got := code(tc.run(r)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
	if !newRecord().IsParty(as("ALICE", false), false) || newRecord().IsParty(as("ALICE", true), false) {
		t.Fatal("IsParty ignores the comparison rule")
	}
	if SubjectKey("Bob", false) != SubjectKey("bOB", false) || SubjectKey("Bob", true) == SubjectKey("bob", true) {
		t.Fatal("SubjectKey")
	}
}
