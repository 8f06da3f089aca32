package policy

import (
	"context"
	"testing"
	"time"
)

// The parts of the input a policy reads are found through imports, whole
// documents, plain values and function arguments; nothing it reads is left
// out.
func TestInputUse(t *testing.T) {
	none := InputUse{}
	tests := []struct {
		name, rego string
		want       InputUse
	}{
		{"method and groups only", `decision := 1 if { input.request.method == "POST"; "x" in input.identity.groups }`, none},
		{"body field", `decision := 1 if input.request.body.target == "all"`, InputUse{Body: true}},
		{"import alias", "import input.request.headers as h\ndecision := 1 if h[\"x-change\"]", InputUse{Headers: true}},
		{"request by a variable key", `decision := 1 if { some k; input.request[k] == 1 }`, InputUse{Body: true, Headers: true, Query: true}},
		{"identity iterated", `decision := 1 if { some k, v in input.identity; v == 1; k }`, InputUse{Claims: true}},
		{"whole input", `decision := input`, allInput},
		{"input as an argument", "f(y) := y\ndecision := f(input)", allInput},
		{"print", `decision := 1 if print(input.request.query)`, InputUse{Query: true}},
		{"walk", `decision := 1 if walk(input.request.body, [_, "x"])`, InputUse{Body: true}},
		{"claim", `decision := 1 if input.identity.claims.break_glass`, InputUse{Claims: true}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"p.rego": "package approval\n\n" + tc.rego + "\n"})
			p, err := Load(context.Background(), dir, "", nil)
			if err != nil {
				t.Fatal(err)
			}
			if p.Use != tc.want {
				t.Fatalf("use %+v, want %+v", p.Use, tc.want)
			}
		})
	}
	p, err := Load(context.Background(), "../../policies", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := (InputUse{Body: true, Query: true, Claims: true}); p.Use != want {
		t.Fatalf("shipped policies: use %+v, want %+v", p.Use, want)
	}
}

// A decision on a call sees every part the policy reads.
func TestDecideCallBuildsWhatIsRead(t *testing.T) {
	e := load(t, writeFiles(t, map[string]string{"p.rego": `package approval

decision := {"action": "allow", "policy": "p", "reason": "r"} if {
	input.request.body.reason == "stolen"
	input.request.headers["x-change"] == ["CHG-1"]
	input.request.query.force == ["1"]
	input.identity.claims.sub == "alice"
} else := {"action": "deny", "policy": "p", "reason": "r"}
`}))
	c := call("POST", "/devices/2/wipe", `{"reason":"stolen"}`)
	c.Header.Set("X-Change", "CHG-1")
	d, err := e.DecideCall(context.Background(), c, alice, time.Now())
	if err != nil || d.Action != Allow {
		t.Fatalf("%+v %v", d, err)
	}
}
