package policy

import (
	"context"
	"testing"
	"time"

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
	input := Input(c, who, now)
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
