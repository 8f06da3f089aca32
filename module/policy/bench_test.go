package policy

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
)

// BenchmarkDecide compares a decision through the Engine (input built from
// the call, result checked against the contract) with raw OPA evaluation
// of the same prepared query and input, on the shipped policies.
func BenchmarkDecide(b *testing.B) {
	p, err := Load(context.Background(), "../../policies", "", nil)
	if err != nil {
		b.Fatal(err)
	}
	e := NewEngine(p)
	c := call("POST", "/devices/2/wipe", `{"reason":"stolen"}`)
	who := Caller{Subject: "alice", Groups: []string{"it-ops"}, Claims: map[string]any{"sub": "alice"}}
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	ctx := context.Background()
	b.Run("engine", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d, err := e.DecideCall(ctx, c, who, now)
			if err != nil || d.Action != RequireApproval {
				b.Fatal(d, err)
			}
		}
	})
	v, err := Input(c, who, now)
	if err != nil {
		b.Fatal(err)
	}
	doc, err := ast.JSON(v)
	if err != nil {
		b.Fatal(err)
	}
	input := doc.(map[string]any) // what a plain OPA integration hands over
	b.Run("raw-opa", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			rs, err := p.query.Eval(ctx, rego.EvalInput(input))
			if err != nil || len(rs) != 1 {
				b.Fatal(rs, err)
			}
		}
	})
}

// BenchmarkLibrary sets a decision by the shipped policy library beside the
// same decision by the one-rule policy of the load benchmark
// (bench/policies/minimal.rego), for a call each allows, parks and denies:
// the library's own cost, which every policy an admin writes on top of it
// pays.
func BenchmarkLibrary(b *testing.B) {
	ctx := context.Background()
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC) // a Monday, in business hours
	releaser := Caller{Subject: "releaser", Groups: []string{"app-release-managers"}, Claims: map[string]any{"sub": "releaser"}}
	alice := Caller{Subject: "alice", Groups: []string{"it-ops"}, Claims: map[string]any{"sub": "alice"}}
	cases := []struct {
		name   string
		call   Call
		who    Caller
		action string
	}{
		{"allow", call("POST", "/apps", `{"name":"payroll-client","version":"4.2.1"}`), releaser, Allow},
		{"park", call("POST", "/devices/9/wipe", `{"reason":"stolen"}`), alice, RequireApproval},
		{"deny", call("DELETE", "/devices", ""), alice, Deny},
	}
	pols := []struct{ name, dir string }{{"library", "../../policies"}, {"one-rule", "../../bench/policies"}}
	// Other versions of the library, to set before and after side by side
	// in one run: BENCH_POLICY_DIRS=/tmp/before/policies (a git archive of
	// an older commit's policies/).
	for _, dir := range strings.Split(os.Getenv("BENCH_POLICY_DIRS"), ",") {
		if dir != "" {
			pols = append(pols, struct{ name, dir string }{dir, dir})
		}
	}
	for _, pol := range pols {
		p, err := Load(ctx, pol.dir, "", nil)
		if err != nil {
			b.Fatal(err)
		}
		for _, tc := range cases {
			b.Run(tc.name+"/"+pol.name, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					d, err := p.DecideCall(ctx, tc.call, tc.who, now)
					if err != nil || d.Action != tc.action {
						b.Fatal(d, err)
					}
				}
			})
		}
	}
}

// BenchmarkInput builds the input of a call with a small JSON body as a
// Rego value: whole, and without the parts a policy does not read (body,
// headers, query, claims), as for bench/policies/minimal.rego.
func BenchmarkInput(b *testing.B) {
	c := call("POST", "/apps/7", `{"name":"payroll-client","version":"4.2.1","assignments":[{"group":"all-laptops","intent":"required"}]}`)
	c.Header.Set("User-Agent", "curl/8.5.0")
	c.Header.Set("Accept", "*/*")
	who := Caller{Subject: "releaser", Groups: []string{"app-release-managers"},
		Claims: map[string]any{"sub": "releaser", "groups": []any{"app-release-managers"}, "exp": 1.7e9, "iat": 1.7e9}}
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.UTC)
	b.Run("value", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Input(c, who, now); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("value-unread-parts-left-out", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := (InputUse{}).value(c, who, now); err != nil {
				b.Fatal(err)
			}
		}
	})
}
