package policy

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/rego"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"
)

func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func load(t *testing.T, dir string) *Engine {
	t.Helper()
	p, err := Load(context.Background(), dir, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	return NewEngine(p)
}

var alice = Caller{Subject: "alice", Groups: []string{"admins"}, Claims: map[string]any{"sub": "alice"}}

// call is a judged call with a JSON body as the gateway reads it (package
// inspect); a body that is not JSON is left unparsed (nil).
func call(method, path string, body string) Call {
	c := Call{Method: method, Path: path, Host: "admin.test", Query: url.Values{"force": {"1"}},
		Header:      http.Header{"Content-Type": {"application/json"}, "Authorization": {"Bearer secret-token"}, "Cookie": {"s=1"}},
		ContentType: "application/json", BodySize: len(body), RemoteIP: "10.1.2.3"}
	if body != "" {
		c.Body, _ = inspect.ParseJSON([]byte(body))
		sum := sha256.Sum256([]byte(body))
		c.BodySHA256 = hex.EncodeToString(sum[:])
	}
	return c
}

// TestShippedPolicyExamples evaluates every example of policies/README.md
// (fenced blocks marked "json example": an input and the whole decision it
// must give) against the shipped policies, with the real engine.
func TestShippedPolicyExamples(t *testing.T) {
	e := load(t, "../../policies")
	for _, f := range e.Current().Files {
		if strings.HasSuffix(f, "_test.rego") {
			t.Fatalf("test file %s was loaded as policy", f)
		}
	}
	doc, err := os.ReadFile("../../policies/README.md")
	if err != nil {
		t.Fatal(err)
	}
	blocks := regexp.MustCompile("(?s)```json example\n(.*?)```").FindAllStringSubmatch(string(doc), -1)
	if len(blocks) < 5 {
		t.Fatalf("only %d examples in policies/README.md", len(blocks))
	}
	for i, b := range blocks {
		var ex struct {
			Input    map[string]any `json:"input"`
			Decision map[string]any `json:"decision"`
		}
		dec := json.NewDecoder(strings.NewReader(b[1]))
		dec.UseNumber()
		if err := dec.Decode(&ex); err != nil {
			t.Fatalf("example %d: %v", i+1, err)
		}
		rs, err := e.Current().query.Eval(context.Background(), rego.EvalInput(ex.Input))
		if err != nil || len(rs) != 1 {
			t.Fatalf("example %d: %v %v", i+1, rs, err)
		}
		got, _ := json.Marshal(rs[0].Expressions[0].Value)
		want, _ := json.Marshal(ex.Decision)
		if string(got) != string(want) {
			t.Errorf("example %d:\n got %s\nwant %s", i+1, got, want)
		}
		if _, err := e.Decide(context.Background(), ex.Input); err != nil {
			t.Errorf("example %d breaks the contract: %v", i+1, err)
		}
	}
}

// echo is a policy that returns parts of its input, so the test can see
// exactly what the policy saw.
const echo = `package approval

decision := {
	"action": "deny",
	"policy": "echo",
	"reason": json.marshal({
		"headers": object.keys(input.request.headers),
		"body": input.request.body,
		"query": input.request.query,
		"ip": input.request.remote_ip,
		"host": input.request.host,
		"groups": input.identity.groups,
		"claims": input.identity.claims,
		"owner": data.devices.owners["7"],
		"time_ok": time.parse_rfc3339_ns(input.time) > 0,
	}),
}
`

func TestInputAndData(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"echo.rego":         echo,
		"devices/data.json": `{"owners": {"7": "corporate"}}`,
	})
	e := load(t, dir)
	d, err := e.DecideCall(context.Background(), call("POST", "/devices/7/wipe", `{"n": 1}`), alice, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	got := d.Reason
	for _, want := range []string{`"headers":["content-type"]`, `"body":{"n":1}`, `"query":{"force":["1"]}`,
		`"ip":"10.1.2.3"`, `"host":"admin.test"`, `"groups":["admins"]`, `"owner":"corporate"`, `"time_ok":true`} {
		if !strings.Contains(got, want) {
			t.Errorf("input seen by the policy lacks %s: %s", want, got)
		}
	}
	if strings.Contains(got, "secret-token") || strings.Contains(got, "s=1") {
		t.Fatalf("credentials reached the policy: %s", got)
	}
	// A body the gateway does not parse is null.
	d, _ = e.DecideCall(context.Background(), call("POST", "/x", "not json"), alice, time.Now())
	if !strings.Contains(d.Reason, `"body":null`) {
		t.Fatalf("non-JSON body: %s", d.Reason)
	}
}

func TestMalformedDecisionsFailClosed(t *testing.T) {
	tests := map[string]string{
		"undefined":                   `decision := 1 if { false }`,
		"not an object":               `decision := "allow"`,
		"unknown action":              `decision := {"action": "maybe"}`,
		"action not string":           `decision := {"action": true}`,
		"no resource":                 `decision := {"action": "require_approval", "approvers": [{"group": "a", "required": 1}]}`,
		"no approvers":                `decision := {"action": "require_approval", "resource": "x", "approvers": []}`,
		"approver no group":           `decision := {"action": "require_approval", "resource": "x", "approvers": [{"required": 1}]}`,
		"required zero":               `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 0}]}`,
		"required fraction":           `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1.5}]}`,
		"bad expires_in":              `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "expires_in": "soon"}`,
		"runtime error":               `decision := {"action": "allow", "policy": sprintf("%d", [to_number(input.request.path)])}`,
		"reason not string":           `decision := {"action": "deny", "reason": 5}`,
		"bad complete value":          `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "complete": "later"}`,
		"approver_auth not an object": `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "approver_auth": "mfa"}`,
		"approver_auth asks nothing":  `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "approver_auth": {}}`,
		"bad max_age":                 `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "approver_auth": {"max_age": "soon"}}`,
		"amr not strings":             `decision := {"action": "require_approval", "resource": "x", "approvers": [{"group": "a", "required": 1}], "approver_auth": {"amr": [1]}}`,
	}
	for name, rule := range tests {
		t.Run(name, func(t *testing.T) {
			dir := writeFiles(t, map[string]string{"p.rego": "package approval\n\n" + rule + "\n"})
			p, err := Load(context.Background(), dir, "", nil)
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			d, err := NewEngine(p).DecideCall(context.Background(), call("POST", "/x", ""), alice, time.Now())
			if err == nil {
				t.Fatalf("no error for a malformed decision: %+v", d)
			}
			if d.Action != Deny {
				t.Fatalf("malformed decision is %q, not deny", d.Action)
			}
		})
	}
}

func TestWellFormedDecision(t *testing.T) {
	dir := writeFiles(t, map[string]string{"p.rego": `package approval

decision := {
	"action": "require_approval", "policy": "rbac", "resource": "roles/1",
	"approvers": [{"group": "a", "required": 2}, {"group": "b", "required": 1}],
	"reason": "r", "expires_in": "2h", "complete": "auto",
	"approver_auth": {"max_age": "15m", "acr_values": ["urn:mfa"], "amr": ["mfa", "hwk"]},
}
`})
	d, err := load(t, dir).DecideCall(context.Background(), call("PUT", "/roles/1", ""), alice, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	want := Decision{Action: RequireApproval, Policy: "rbac", Resource: "roles/1",
		Approvers: []Requirement{{"a", 2}, {"b", 1}}, Reason: "r", ExpiresIn: 2 * time.Hour, Complete: "auto",
		ApproverAuth: &AuthRequirement{MaxAge: 15 * time.Minute, ACRValues: []string{"urn:mfa"}, AMR: []string{"mfa", "hwk"}}}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %+v", d)
	}
}

func TestLoadErrorsNameFileAndLine(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"ok.rego":     "package approval\n\ndecision := {\"action\": \"allow\"}\n",
		"broken.rego": "package approval\n\nx := {\n",
	})
	_, err := Load(context.Background(), dir, "", nil)
	if err == nil || !strings.Contains(err.Error(), "broken.rego:4") {
		t.Fatalf("error does not name broken.rego:4: %v", err)
	}
	dir = writeFiles(t, map[string]string{"typeerr.rego": "package approval\n\ndecision := concat(\"\", [1])\n"})
	if _, err := Load(context.Background(), dir, "", nil); err == nil || !strings.Contains(err.Error(), "typeerr.rego:3") {
		t.Fatalf("compile error does not name the file: %v", err)
	}
	if _, err := Load(context.Background(), t.TempDir(), "", nil); err == nil || !strings.Contains(err.Error(), "no .rego") {
		t.Fatalf("empty dir: %v", err)
	}
	if _, err := Load(context.Background(), filepath.Join(t.TempDir(), "missing"), "", nil); err == nil {
		t.Fatal("missing dir accepted")
	}
	dir = writeFiles(t, map[string]string{"p.rego": "package approval\n\ndecision := 1\n", "bad/data.json": "{"})
	if _, err := Load(context.Background(), dir, "", nil); err == nil || !strings.Contains(err.Error(), "data.json") {
		t.Fatalf("bad data file: %v", err)
	}
}

func TestPrintGoesToTheLog(t *testing.T) {
	core, logs := observer.New(zap.InfoLevel)
	dir := writeFiles(t, map[string]string{"p.rego": "package approval\n\ndecision := {\"action\": \"allow\"} if {\n\tprint(\"checking\", input.request.path)\n}\n"})
	p, err := Load(context.Background(), dir, "", zap.New(core))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := NewEngine(p).DecideCall(context.Background(), call("POST", "/apps", ""), alice, time.Now()); err != nil {
		t.Fatal(err)
	}
	if logs.FilterMessage("rego print").Len() != 1 || !strings.Contains(logs.All()[0].ContextMap()["message"].(string), "/apps") {
		t.Fatalf("print not logged: %+v", logs.All())
	}
}

func TestSwapIsWhole(t *testing.T) {
	allow := writeFiles(t, map[string]string{"p.rego": "package approval\n\ndecision := {\"action\": \"allow\"}\n"})
	deny := writeFiles(t, map[string]string{"p.rego": "package approval\n\ndecision := {\"action\": \"deny\"}\n"})
	e := load(t, allow)
	p2, err := Load(context.Background(), deny, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	e.Swap(p2)
	d, _ := e.DecideCall(context.Background(), call("POST", "/x", ""), alice, time.Now())
	if d.Action != Deny || e.Current() != p2 {
		t.Fatalf("swap not in force: %+v", d)
	}
}

// The input document is the contract's: every field, credentials left
// out, the body parsed with exact numbers, the time in UTC.
func TestInputDocument(t *testing.T) {
	now := time.Date(2026, 11, 2, 10, 0, 0, 0, time.FixedZone("CET", 3600))
	body, err := inspect.ParseJSON([]byte(`{"reason":"stolen","count":3,"ratio":0.5,"big":1234567890123456,"tags":["a",null,true],"nested":{"x":{}}}`))
	if err != nil {
		t.Fatal(err)
	}
	c := Call{Method: "PATCH", WireMethod: "POST", Path: "/devices/2", RawPath: "/dev%69ces/2", Host: "h", RemoteIP: "10.0.0.1",
		Query:       url.Values{"force": {"true", "1"}},
		Header:      http.Header{"Authorization": {"Bearer secret"}, "Cookie": {"c=1"}, "X-Multi": {"a", "b"}, "Proxy-Authorization": {"p"}},
		ContentType: "application/json", Body: body, BodySize: 120, BodySHA256: "ab12"}
	who := Caller{Subject: "alice", Groups: []string{"it-ops", "approvers"}, Claims: map[string]any{"sub": "alice", "org": map[string]any{"unit": []any{"a"}}}}
	want := `{"identity":{"claims":{"org":{"unit":["a"]},"sub":"alice"},"groups":["it-ops","approvers"],"subject":"alice"},` +
		`"request":{"body":{"big":1234567890123456,"count":3,"nested":{"x":{}},"ratio":0.5,"reason":"stolen","tags":["a",null,true]},` +
		`"body_size":120,"body_sha256":"ab12","content_type":"application/json",` +
		`"headers":{"x-multi":["a","b"]},"host":"h","method":"PATCH","wire_method":"POST","path":"/devices/2","segments":["devices","2"],"raw_path":"/dev%69ces/2",` +
		`"query":{"force":["true","1"]},"remote_ip":"10.0.0.1"},` +
		`"time":"2026-11-02T09:00:00Z"}`
	v, err := Input(c, who, now)
	if err != nil {
		t.Fatal(err)
	}
	if ast.MustParseTerm(want).Value.Compare(v) != 0 {
		t.Fatalf("input\n got %s\nwant %s", v, want)
	}
	// Without a parsed body (none, or a type the gateway does not parse),
	// body is null and the method and path stand for the wire's.
	v, err = Input(Call{Method: "POST", Path: "/x"}, Caller{Subject: "bob"}, now)
	if err != nil {
		t.Fatal(err)
	}
	req := v.(ast.Object).Get(ast.StringTerm("request"))
	if !req.Get(ast.StringTerm("body")).Equal(ast.NullTerm()) || !req.Get(ast.StringTerm("wire_method")).Equal(ast.StringTerm("POST")) ||
		!req.Get(ast.StringTerm("raw_path")).Equal(ast.StringTerm("/x")) {
		t.Fatalf("input without a body: %v", req)
	}
}

// TestDecideCompletesSegments: a hand-written input (the evaluate endpoint's)
// that gives request.path but not request.segments is judged as the
// gateway's own input for that path would be.
func TestDecideCompletesSegments(t *testing.T) {
	e := load(t, "../../policies")
	d, err := e.Decide(context.Background(), map[string]any{
		"request":  map[string]any{"method": "DELETE", "path": "/Devices/", "body": nil, "body_size": 0},
		"identity": map[string]any{"subject": "alice", "groups": []any{}, "claims": map[string]any{}},
		"time":     "2026-11-02T10:00:00Z",
	})
	if err != nil || d.Action != Deny || d.Policy != "collections" {
		t.Fatalf("got %+v, %v; want the collections policy's deny", d, err)
	}
}
