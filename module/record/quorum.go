package record

import (
	"slices"
	"sort"
	"strings"
)

// Quorum: who is eligible to approve a request, how approvals are counted
// toward its requirements, and when they are met.

// EligibleGroups returns the required groups that p is a member of.
func (r *Record) EligibleGroups(p Principal) []string {
	var out []string
	for _, req := range r.Approvers {
		if p.InGroup(req.Group) && !slices.Contains(out, req.Group) {
			out = append(out, req.Group)
		}
	}
	return out
}

// IsApprover reports whether p may approve or reject r by group membership
// (the requester is excluded separately).
func (r *Record) IsApprover(p Principal) bool {
	return len(r.EligibleGroups(p)) > 0
}

// ApprovedBy lists the approvers' subjects in the order they approved.
func (r *Record) ApprovedBy() []string {
	all := r.approvals()
	out := make([]string, len(all))
	for i, a := range all {
		out[i] = a.Subject
	}
	return out
}

// approvals returns every approval of r, oldest first.
func (r *Record) approvals() []Approval {
	var all []Approval
	for _, req := range r.Approvers {
		all = append(all, req.Approvals...)
	}
	sort.SliceStable(all, func(i, j int) bool { return all[i].At.Before(all[j].At) })
	return all
}

// QuorumMet reports whether every requirement has its approvals.
func (r *Record) QuorumMet() bool {
	for _, req := range r.Approvers {
		if len(req.Approvals) < req.Required {
			return false
		}
	}
	return true
}

func (r *Record) requiredGroups() string {
	var gs []string
	for _, req := range r.Approvers {
		gs = append(gs, req.Group)
	}
	return strings.Join(gs, " or ")
}

// assign distributes approvals (oldest first) over the requirements as a
// maximum bipartite matching with capacities, and stores the result in
// r.Approvers. It reports false, leaving r unchanged, when some approval
// cannot be counted toward any requirement.
func (r *Record) assign(all []Approval) bool {
	match := make([]int, len(all))
	load := make([]int, len(r.Approvers))
	for j := range match {
		match[j] = -1
	}
	var place func(j int, seen []bool) bool
	place = func(j int, seen []bool) bool {
		for i, req := range r.Approvers {
			if seen[i] || !slices.Contains(all[j].Eligible, req.Group) {
				continue
			}
			seen[i] = true
			if load[i] < req.Required {
				match[j] = i
				load[i]++
				return true
			}
			for k := range all {
				if k != j && match[k] == i && place(k, seen) {
					match[j] = i
					return true
				}
			}
		}
		return false
	}
	for j := range all {
		if !place(j, make([]bool, len(r.Approvers))) {
			return false
		}
	}
	for i := range r.Approvers {
		r.Approvers[i].Approvals = nil
	}
	for j, a := range all {
		i := match[j]
		a.Group = r.Approvers[i].Group
		r.Approvers[i].Approvals = append(r.Approvers[i].Approvals, a)
	}
	r.recount()
	return true
}

// recount refreshes how many approvals each requirement still needs.
func (r *Record) recount() {
	for i := range r.Approvers {
		r.Approvers[i].Remaining = max(0, r.Approvers[i].Required-len(r.Approvers[i].Approvals))
		if r.Approvers[i].Approvals == nil {
			r.Approvers[i].Approvals = []Approval{}
		}
	}
}

// NewRequirements builds a record's requirements from a decision's
// approvers: entries for the same group are merged (their counts added).
func NewRequirements(in []Requirement) []Requirement {
	var out []Requirement
	for _, q := range in {
		if j := slices.IndexFunc(out, func(o Requirement) bool { return o.Group == q.Group }); j >= 0 {
			out[j].Required += q.Required
			continue
		}
		out = append(out, Requirement{Group: q.Group, Required: q.Required})
	}
	r := Record{Approvers: out}
	r.recount()
	return r.Approvers
}
