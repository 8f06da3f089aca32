package policy

import (
	"errors"
	"fmt"
	"time"
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
}

// failClosed is the decision used when the policy gives no usable decision.
var failClosed = Decision{Action: Deny, Policy: "", Reason: "the access policy gave no valid decision"}

// parseDecision reads a decision under the contract; every deviation is an
// error.
func parseDecision(v any) (Decision, error) {
	m, ok := v.(map[string]any)
	if !ok {
		return Decision{}, fmt.Errorf("decision is a %T, not an object", v)
	}
	var d Decision
	var err error
	str := func(key string, required bool) string {
		raw, present := m[key]
		if !present {
			if required && err == nil {
				err = fmt.Errorf("decision has no %q", key)
			}
			return ""
		}
		s, ok := raw.(string)
		if !ok && err == nil {
			err = fmt.Errorf("decision %q is a %T, not a string", key, raw)
		}
		return s
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
		if raw, ok := m[key]; ok {
			b, isBool := raw.(bool)
			if !isBool {
				return Decision{}, fmt.Errorf("decision %q is a %T, not a boolean", key, raw)
			}
			*dst = b
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
	list, ok := m["approvers"].([]any)
	if !ok || len(list) == 0 {
		return Decision{}, errors.New("a require_approval decision needs a non-empty approvers list")
	}
	for i, e := range list {
		em, ok := e.(map[string]any)
		if !ok {
			return Decision{}, fmt.Errorf("approvers[%d] is not an object", i)
		}
		g, ok := em["group"].(string)
		if !ok || g == "" {
			return Decision{}, fmt.Errorf("approvers[%d].group is not a non-empty string", i)
		}
		n, nerr := numberToInt(em["required"])
		if nerr != nil || n < 1 {
			return Decision{}, fmt.Errorf("approvers[%d].required is not a whole number of at least 1", i)
		}
		d.Approvers = append(d.Approvers, Requirement{Group: g, Required: n})
	}
	return d, nil
}
