package policy

import (
	"encoding/json"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/open-policy-agent/opa/v1/ast"
)

// FuzzInput builds the policy input from arbitrary requests, their bodies
// read as the gateway reads them: it never panics, is valid JSON, never
// carries credentials, and its body is the body the gateway read (null
// when it refused or could not read one).
func FuzzInput(f *testing.F) {
	f.Add("POST", "/apps/1", "a=1&b=2", "X-Thing", "v", []byte(`{"a":[1,2]}`))
	f.Add("DELETE", "/", "%zz", "Authorization", "Bearer t", []byte("not json"))
	f.Add("PUT", "/x/../y", "", "Cookie", "s=1", []byte(`{"a":1}{"b":2}`))
	f.Fuzz(func(t *testing.T, method, path, rawQuery, hk, hv string, body []byte) {
		q, _ := url.ParseQuery(rawQuery)
		h := http.Header{}
		if hk != "" {
			h.Add(hk, hv)
		}
		h.Set("Authorization", "Bearer secret-token")
		h.Set("Cookie", "session=secret-cookie")
		h.Set("Content-Type", "application/json")
		c := Call{Method: method, Path: path, Query: q, Header: h}
		if b, err := inspect.ReadBody(body, h, inspect.Options{MaxBody: 1 << 20}); err == nil {
			c.Body, c.BodySize, c.BodySHA256 = b.Value, len(b.Raw), b.SHA256
		}
		read, _ := json.Marshal(c.Body)
		v, err := Input(c, Caller{Subject: "s"}, time.Unix(0, 0))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := ast.JSON(v)
		if err != nil {
			t.Fatalf("input is not JSON: %v", err)
		}
		in := doc.(map[string]any)
		b, err := json.Marshal(in)
		if err != nil {
			t.Fatalf("input is not JSON: %v", err)
		}
		if strings.Contains(string(b), "secret-token") || strings.Contains(string(b), "secret-cookie") {
			t.Fatalf("credentials in the input: %s", b)
		}
		req := in["request"].(map[string]any)
		seen, _ := json.Marshal(req["body"])
		var want, got any
		_ = json.Unmarshal(read, &want)
		_ = json.Unmarshal(seen, &got)
		if !reflect.DeepEqual(want, got) {
			t.Fatalf("the policy sees body %s, the gateway read %s", seen, read)
		}
	})
}
