package policy

import (
	"errors"

	"fmt"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// The actions a decision may take.
const (
	Allow           = "allow"
	Deny            = "deny"
	RequireApproval = "require_approval"
)

// Requirement asks for Required approvals from distinct members of Group.
type Requirement struct {
	Group    string `json:"group"`
	Required int    `json:"required"`
}

// Decision is what the policy decided for one call.
type Decision struct {
	Action    string        `json:"action"`
	Policy    string        `json:"policy,omitempty"`
	Resource  string        `json:"resource,omitempty"`
	Approvers []Requirement `json:"approvers,omitempty"`
	Reason    string        `json:"reason,omitempty"`
	// ExpiresIn overrides the time allowed to reach the quorum.
	ExpiresIn time.Duration `json:"expires_in,omitempty"`
	// Complete is "auto" or "manual" ("" means the configured default).
	Complete string `json:"complete,omitempty"`
	// DryRun lets a require_approval call through, recording what would
	// have been asked.
	DryRun bool `json:"dry_run,omitempty"`
	// BreakGlass lets a require_approval call through at once, recorded as
	// bypassed.
	BreakGlass bool `json:"break_glass,omitempty"`
	// ApproverAuth is the authentication approvers must show (RFC 9470
	// step-up); nil when the decision asks none.
	ApproverAuth *AuthRequirement `json:"approver_auth,omitempty"`
}

// AuthRequirement is a decision's approver_auth: how recently (MaxAge) and
// how (one of ACRValues, all of AMR) an approver must have authenticated.
type AuthRequirement struct {
	MaxAge    time.Duration `json:"max_age,omitempty"`
	ACRValues []string      `json:"acr_values,omitempty"`
	AMR       []string      `json:"amr,omitempty"`
}

// failClosed is the decision used when the policy gives no usable decision.
var failClosed = Decision{Action: Deny, Policy: "", Reason: "the access policy gave no valid decision"}

// decisionKeys are the decision's member names, built once.
var decisionKeys = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{"action", "policy", "resource", "reason", "complete", "expires_in", "dry_run", "break_glass", "approvers", "group", "required",
		"approver_auth", "max_age", "acr_values", "amr"} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// parseDecision reads a decision, as the policy's Rego value, under the
// contract; every deviation is an error.
func parseDecision(v ast.Value) (Decision, error) {
	m, ok := v.(ast.Object)
	if !ok {
		return Decision{}, fmt.Errorf("decision is %s, not an object", ast.ValueName(v))
	}
	var d Decision
	var err error
	str := func(key string, required bool) string {
		raw := m.Get(decisionKeys[key])
		if raw == nil {
			if required && err == nil {
				err = fmt.Errorf("decision has no %q", key)
			}
			return ""
		}
		s, ok := raw.Value.(ast.String)
		if !ok && err == nil {
			err = fmt.Errorf("decision %q is %s, not a string", key, ast.ValueName(raw.Value))
		}
		return string(s)
	}
	d.Action = str("action", true)
	d.Policy = str("policy", false)
	d.Resource = str("resource", false)
	d.Reason = str("reason", false)
	d.Complete = str("complete", false)
	expires := str("expires_in", false)
	if err != nil {
		return Decision{}, err
	}
	for key, dst := range map[string]*bool{"dry_run": &d.DryRun, "break_glass": &d.BreakGlass} {
		if raw := m.Get(decisionKeys[key]); raw != nil {
			b, isBool := raw.Value.(ast.Boolean)
			if !isBool {
				return Decision{}, fmt.Errorf("decision %q is %s, not a boolean", key, ast.ValueName(raw.Value))
			}
			*dst = bool(b)
		}
	}
	switch d.Action {
	case Allow, Deny:
		return d, nil
	case RequireApproval:
	default:
		return Decision{}, fmt.Errorf("decision action %q is not allow, deny or require_approval", d.Action)
	}
	if d.Resource == "" {
		return Decision{}, errors.New("a require_approval decision needs a non-empty resource")
	}
	switch d.Complete {
	case "", "auto", "manual":
	default:
		return Decision{}, fmt.Errorf("decision complete %q is not auto or manual", d.Complete)
	}
	if expires != "" {
		if d.ExpiresIn, err = time.ParseDuration(expires); err != nil || d.ExpiresIn <= 0 {
			return Decision{}, fmt.Errorf("decision expires_in %q is not a positive duration", expires)
		}
	}
	var list *ast.Array
	if t := m.Get(decisionKeys["approvers"]); t != nil {
		list, _ = t.Value.(*ast.Array)
	}
	if list == nil || list.Len() == 0 {
		return Decision{}, errors.New("a require_approval decision needs a non-empty approvers list")
	}
	for i := range list.Len() {
		em, ok := list.Elem(i).Value.(ast.Object)
		if !ok {
			return Decision{}, fmt.Errorf("approvers[%d] is not an object", i)
		}
		var g ast.String
		if t := em.Get(decisionKeys["group"]); t != nil {
			g, _ = t.Value.(ast.String)
		}
		if g == "" {
			return Decision{}, fmt.Errorf("approvers[%d].group is not a non-empty string", i)
		}
		n, nerr := wholeNumber(em.Get(decisionKeys["required"]))
		if nerr != nil || n < 1 {
			return Decision{}, fmt.Errorf("approvers[%d].required is not a whole number of at least 1", i)
		}
		d.Approvers = append(d.Approvers, Requirement{Group: string(g), Required: n})
	}
	if t := m.Get(decisionKeys["approver_auth"]); t != nil {
		if d.ApproverAuth, err = parseAuthRequirement(t.Value); err != nil {
			return Decision{}, err
		}
	}
	return d, nil
}

// parseAuthRequirement reads a decision's approver_auth.
func parseAuthRequirement(v ast.Value) (*AuthRequirement, error) {
	m, ok := v.(ast.Object)
	if !ok {
		return nil, fmt.Errorf("decision approver_auth is %s, not an object", ast.ValueName(v))
	}
	var a AuthRequirement
	if t := m.Get(decisionKeys["max_age"]); t != nil {
		s, ok := t.Value.(ast.String)
		d, err := time.ParseDuration(string(s))
		if !ok || err != nil || d <= 0 {
			return nil, fmt.Errorf("decision approver_auth.max_age %v is not a positive duration", t)
		}
		a.MaxAge = d
	}
	for key, dst := range map[string]*[]string{"acr_values": &a.ACRValues, "amr": &a.AMR} {
		t := m.Get(decisionKeys[key])
		if t == nil {
			continue
		}
		list, ok := t.Value.(*ast.Array)
		if !ok {
			return nil, fmt.Errorf("decision approver_auth.%s is not an array of strings", key)
		}
		for i := range list.Len() {
			s, ok := list.Elem(i).Value.(ast.String)
			if !ok || s == "" {
				return nil, fmt.Errorf("decision approver_auth.%s[%d] is not a non-empty string", key, i)
			}
			*dst = append(*dst, string(s))
		}
	}
	if a.MaxAge == 0 && len(a.ACRValues) == 0 && len(a.AMR) == 0 {
		return nil, errors.New("decision approver_auth asks nothing: give max_age, acr_values or amr")
	}
	return &a, nil
}

// wholeNumber reads a whole number from a Rego term.
func wholeNumber(t *ast.Term) (int, error) {
	if t == nil {
		return 0, errors.New("missing")
	}
	n, ok := t.Value.(ast.Number)
	if !ok {
		return 0, fmt.Errorf("%s, not a number", ast.ValueName(t.Value))
	}
	i, ok := n.Int()
	if !ok {
		return 0, errors.New("not a whole number")
	}
	return i, nil
}
