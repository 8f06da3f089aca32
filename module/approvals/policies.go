package approvals

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/policy"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// Runtime policy changes are parked like any change, under this policy
// name, and replayed into the store instead of to the backend.
const (
	policyChangePolicy = "gateway-policies"
	internalPolicy     = "policy"
	maxPolicyBody      = 1 << 20
	CodeInvalidPolicy  = "invalid_policy"
)

var policyName = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)

// policyChange is the parked body of a runtime policy change.
type policyChange struct {
	Rego   string         `json:"rego,omitempty"`
	Data   map[string]any `json:"data,omitempty"`
	Delete bool           `json:"delete,omitempty"`
}

// listPolicies lists the runtime policies in force.
func (s *Service) listPolicies(w http.ResponseWriter, r *http.Request, _ *identity.Identity) {
	docs, _, err := s.store.RuntimePolicies(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"runtime": docs, "status": s.policies.Status()})
}

func (s *Service) getPolicy(w http.ResponseWriter, r *http.Request, _ *identity.Identity) {
	name := r.PathValue("name")
	if !policyName.MatchString(name) {
		writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such policy"))
		return
	}
	versions, err := s.store.PolicyVersions(r.Context(), name)
	if err != nil {
		writeError(w, err)
		return
	}
	if len(versions) == 0 {
		writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such runtime policy"))
		return
	}
	cur := versions[len(versions)-1]
	writeJSON(w, http.StatusOK, map[string]any{"policy": cur, "in_force": !cur.Deleted, "versions": versions})
}

// proposePolicy validates a runtime policy change and parks it for the
// policy approvers.
func (s *Service) proposePolicy(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	name := r.PathValue("name")
	if !policyName.MatchString(name) {
		writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such policy"))
		return
	}
	if !s.isAdmin(who) && !slices.ContainsFunc(s.PolicyApprovers, func(g string) bool { return slices.Contains(who.Groups, g) }) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "runtime policies are proposed by members of the admin or policy approver groups"))
		return
	}
	var change policyChange
	body, err := io.ReadAll(io.LimitReader(r.Body, maxPolicyBody+1))
	if err != nil || len(body) > maxPolicyBody {
		writeError(w, inspect.TooLarge(maxPolicyBody))
		return
	}
	if r.Method == http.MethodDelete {
		change.Delete = true
	} else if err := json.Unmarshal(body, &change); err != nil || change.Rego == "" {
		writeError(w, fail(http.StatusBadRequest, CodeBadRequest, `the body must be {"rego": "...", "data": {...}}`))
		return
	}
	mods, err := s.proposedSet(r.Context(), name, change)
	if err != nil {
		writeError(w, err)
		return
	}
	if _, err := s.policies.Check(r.Context(), mods); err != nil {
		writeError(w, fail(http.StatusUnprocessableEntity, CodeInvalidPolicy, err.Error()))
		return
	}
	stored, _ := json.Marshal(change)
	r.Body = io.NopCloser(strings.NewReader(string(stored)))
	r.ContentLength = int64(len(stored))
	r.Header.Set("Content-Type", "application/json")
	reqs := make([]policy.Requirement, len(s.PolicyApprovers))
	for i, g := range s.PolicyApprovers {
		reqs[i] = policy.Requirement{Group: g, Required: 1}
	}
	verb := "change"
	if change.Delete {
		verb = "removal"
	}
	d := policy.Decision{Action: policy.RequireApproval, Policy: policyChangePolicy, Resource: "policies/" + name,
		Approvers: reqs, Reason: fmt.Sprintf("a %s of runtime policy %s needs approval from the policy approvers", verb, name)}
	rec, err := s.park(r, parked{who: who, d: d, body: stored, now: s.clock(), internal: internalPolicy,
		method: inspect.Method{Effective: r.Method, Wire: r.Method},
		target: inspect.Target{Path: r.URL.Path, RawPath: r.URL.EscapedPath(), RawQuery: r.URL.RawQuery}})
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Location", s.api+"/requests/"+rec.ID)
	writeJSON(w, http.StatusAccepted, rec)
}

// proposedSet returns the runtime modules with change applied to name, and
// checks the change names its own package.
func (s *Service) proposedSet(ctx context.Context, name string, change policyChange) ([]policy.Module, error) {
	docs, _, err := s.store.RuntimePolicies(ctx)
	if err != nil {
		return nil, err
	}
	var mods []policy.Module
	found := false
	for _, d := range docs {
		if d.Name == name {
			found = true
			continue
		}
		mods = append(mods, policy.Module{Name: d.Name, Rego: d.Rego, Data: d.Data})
	}
	if change.Delete {
		if !found {
			return nil, fail(http.StatusNotFound, CodeNotFound, "no such runtime policy")
		}
		return mods, nil
	}
	if err := policy.ParseRuntime(name, change.Rego); err != nil {
		return nil, fail(http.StatusUnprocessableEntity, CodeInvalidPolicy, err.Error())
	}
	return append(mods, policy.Module{Name: name, Rego: change.Rego, Data: change.Data}), nil
}

// applyPolicy is the replay of a completed policy change: it puts the
// change in force in the store, where every gateway's watch picks it up.
func (s *Service) applyPolicy(ctx context.Context, rec *record.Record, body []byte) record.Result {
	var change policyChange
	if err := json.Unmarshal(body, &change); err != nil {
		return record.Result{Error: "the parked policy change is unreadable: " + err.Error()}
	}
	name := strings.TrimPrefix(rec.Resource, "policies/")
	// The active set may have changed since the proposal: validate again.
	mods, err := s.proposedSet(ctx, name, change)
	if err == nil {
		_, err = s.policies.Check(ctx, mods)
	}
	if err != nil {
		return record.Result{Status: http.StatusUnprocessableEntity, Body: "not applied: " + asAPIError(err).message}
	}
	doc, err := s.store.ApplyPolicy(ctx, store.PolicyDoc{Name: name, Rego: change.Rego, Data: change.Data, Deleted: change.Delete,
		ProposedBy: rec.Requester.Subject, ApprovedBy: rec.ApprovedBy(), RequestID: rec.ID, At: s.clock()})
	if err != nil {
		return record.Result{Error: "applying the policy change: " + err.Error()}
	}
	// In force on this gateway before the completion answers (the others
	// follow by their watch).
	if _, err := s.loadRuntime(ctx); err != nil {
		s.log.Warn("loading the runtime policies after a change", zap.Error(err))
	}
	b, _ := json.Marshal(doc)
	s.log.Warn("runtime policy changed", zap.String("policy", name), zap.Int("version", doc.Version),
		zap.Bool("deleted", doc.Deleted), zap.String("proposed_by", doc.ProposedBy), zap.Strings("approved_by", doc.ApprovedBy))
	return record.Result{Status: http.StatusOK, Headers: http.Header{"Content-Type": {"application/json"}}, Body: string(b)}
}

// loadRuntime reads the runtime policies from the store and puts them in
// force.
func (s *Service) loadRuntime(ctx context.Context) (int64, error) {
	// One load at a time, and never an older read over a newer one (the
	// watch and a completion both load).
	s.runtimeMu.Lock()
	defer s.runtimeMu.Unlock()
	docs, rev, err := s.store.RuntimePolicies(ctx)
	if err != nil {
		return 0, err
	}
	if rev < s.runtimeRev {
		return rev, nil
	}
	s.runtimeRev = rev
	mods := make([]policy.Module, 0, len(docs))
	for _, d := range docs {
		mods = append(mods, policy.Module{Name: d.Name, Rego: d.Rego, Data: d.Data})
	}
	if err := s.policies.SetRuntime(ctx, mods); err != nil {
		return rev, err
	}
	s.runtimeReady.Store(true)
	return rev, nil
}

// watchRuntime keeps the runtime policies current until ctx ends. Until
// they are first loaded, judged calls answer 503: a runtime deny must not
// be missed.
func (s *Service) watchRuntime(ctx context.Context) {
	var rev int64
	for ctx.Err() == nil {
		var err error
		if rev, err = s.loadRuntime(ctx); err == nil || !errors.As(err, new(*store.UnavailableError)) {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Second):
		}
	}
	s.store.WatchPolicies(ctx, rev, func() {
		if _, err := s.loadRuntime(ctx); err != nil {
			s.log.Error("loading runtime policies", zap.Error(err))
		}
	})
}

// evaluate lets an admin see the decision for an input, sending nothing.
func (s *Service) evaluate(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "evaluating policies is for members of the admin groups"))
		return
	}
	var in struct {
		Input map[string]any `json:"input"`
	}
	dec := json.NewDecoder(io.LimitReader(r.Body, maxPolicyBody))
	dec.UseNumber()
	if err := dec.Decode(&in); err != nil || in.Input == nil {
		writeError(w, fail(http.StatusBadRequest, CodeBadRequest, `the body must be {"input": {...}}`))
		return
	}
	if _, ok := in.Input["time"]; !ok {
		in.Input["time"] = s.clock().UTC().Format(time.RFC3339)
	}
	d, err := s.policies.Engine().Decide(r.Context(), in.Input)
	out := map[string]any{"decision": d}
	if err != nil {
		out["error"] = err.Error()
	}
	writeJSON(w, http.StatusOK, out)
}
