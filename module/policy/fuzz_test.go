package policy

import (
	"encoding/json"

	"strings"
	"testing"

	"github.com/open-policy-agent/opa/v1/ast"
)

// FuzzParseDecision feeds arbitrary JSON documents to the decision parser:
// it must never panic, and what it accepts must satisfy the contract.
func FuzzParseDecision(f *testing.F) {
	for _, s := range []string{
		`{"action":"allow"}`,
		`{"action":"require_approval","resource":"a","approvers":[{"group":"g","required":1}]}`,
		`{"action":"require_approval","resource":"a","approvers":[{"group":"g","required":1.5}]}`,
		`{"action":"deny","reason":5}`,
		`[]`, `null`, `"allow"`,
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, doc string) {
		var v any
		dec := json.NewDecoder(strings.NewReader(doc))
		dec.UseNumber()
		if dec.Decode(&v) != nil {
			return
		}
		av, err := ast.InterfaceToValue(v)
		if err != nil {
			return
		}
		d, err := parseDecision(av)
		if err != nil {
			return
		}
		switch d.Action {
		case Allow, Deny:
		case RequireApproval:
			if d.Resource == "" || len(d.Approvers) == 0 {
				t.Fatalf("accepted %s as %+v", doc, d)
			}
			for _, a := range d.Approvers {
				if a.Group == "" || a.Required < 1 {
					t.Fatalf("accepted approver %+v", a)
				}
			}
		default:
			t.Fatalf("accepted action %q", d.Action)
		}
	})
}
