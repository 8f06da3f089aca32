package policy

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
)

// Call is the part of an HTTP request that policies see, as the backend
// will execute it (package inspect reads it so).
type Call struct {
	// Method is the method the backend will execute; WireMethod the
	// request line's, when a judged method override made them differ.
	Method     string
	WireMethod string
	// Path is the normalized path; RawPath the escaped path as forwarded.
	Path    string
	RawPath string
	Host    string
	Query   url.Values
	Header  http.Header
	// ContentType is the media type, lower case, without parameters.
	ContentType string
	// Body is the parsed body (JSON, or form fields as {name: [values]}),
	// nil when there is none or it is of a type the gateway does not
	// parse; BodySize and BodySHA256 describe the bytes as sent.
	Body       any
	BodySize   int
	BodySHA256 string
	RemoteIP   string
}

// Caller is the authenticated identity that policies see.
type Caller struct {
	Subject string
	Groups  []string
	Claims  map[string]any
}

// inputKeys are the input document's member names, built once: OPA never
// changes a term it is given, so every input shares them.
var inputKeys = func() map[string]*ast.Term {
	m := map[string]*ast.Term{}
	for _, k := range []string{"request", "method", "wire_method", "path", "segments", "raw_path", "host", "query", "headers", "content_type", "body", "body_size", "body_sha256", "remote_ip", "identity", "subject", "groups", "claims", "time"} {
		m[k] = ast.StringTerm(k)
	}
	return m
}()

// hiddenHeaders never reach a policy: they carry credentials.
var hiddenHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true}

// Input builds the contract's input document for a call, as a Rego value.
func Input(c Call, who Caller, now time.Time) (ast.Value, error) {
	return allInput.value(c, who, now)
}

// value builds the input with the parts in u; the others are left out
// (the policies never read them).
func (u InputUse) value(c Call, who Caller, now time.Time) (ast.Value, error) {
	var headers, query [][2]*ast.Term
	if u.Headers {
		headers = make([][2]*ast.Term, 0, len(c.Header))
		for k, vs := range c.Header {
			lk := strings.ToLower(k)
			if hiddenHeaders[lk] {
				continue
			}
			headers = append(headers, [2]*ast.Term{ast.StringTerm(lk), stringsTerm(vs)})
		}
	}
	if u.Query {
		query = make([][2]*ast.Term, 0, len(c.Query))
		for k, vs := range c.Query {
			query = append(query, [2]*ast.Term{ast.StringTerm(k), stringsTerm(vs)})
		}
	}
	body := ast.NullTerm()
	if u.Body && c.Body != nil {
		bv, err := ast.InterfaceToValue(c.Body)
		if err != nil {
			return nil, err
		}
		body = ast.NewTerm(bv)
	}
	wire, rawPath := c.WireMethod, c.RawPath
	if wire == "" {
		wire = c.Method
	}
	if rawPath == "" {
		rawPath = c.Path
	}
	claims := ast.NewTerm(ast.NewObject())
	if u.Claims && len(who.Claims) > 0 {
		cv, err := ast.InterfaceToValue(who.Claims)
		if err != nil {
			return nil, err
		}
		claims = ast.NewTerm(cv)
	}
	return ast.NewObject(
		ast.Item(inputKeys["request"], ast.ObjectTerm(
			ast.Item(inputKeys["method"], ast.StringTerm(c.Method)),
			ast.Item(inputKeys["wire_method"], ast.StringTerm(wire)),
			ast.Item(inputKeys["path"], ast.StringTerm(c.Path)),
			ast.Item(inputKeys["segments"], stringsTerm(Segments(c.Path))),
			ast.Item(inputKeys["raw_path"], ast.StringTerm(rawPath)),
			ast.Item(inputKeys["host"], ast.StringTerm(c.Host)),
			ast.Item(inputKeys["query"], ast.ObjectTerm(query...)),
			ast.Item(inputKeys["headers"], ast.ObjectTerm(headers...)),
			ast.Item(inputKeys["content_type"], ast.StringTerm(c.ContentType)),
			ast.Item(inputKeys["body"], body),
			ast.Item(inputKeys["body_size"], ast.IntNumberTerm(c.BodySize)),
			ast.Item(inputKeys["body_sha256"], ast.StringTerm(c.BodySHA256)),
			ast.Item(inputKeys["remote_ip"], ast.StringTerm(c.RemoteIP)),
		)),
		ast.Item(inputKeys["identity"], ast.ObjectTerm(
			ast.Item(inputKeys["subject"], ast.StringTerm(who.Subject)),
			ast.Item(inputKeys["groups"], stringsTerm(who.Groups)),
			ast.Item(inputKeys["claims"], claims),
		)),
		ast.Item(inputKeys["time"], ast.StringTerm(now.UTC().Format(time.RFC3339))),
	), nil
}

// Segments is a path's segments in lower case, as routers that match
// paths case-insensitively see them: "/Devices/7/wipe/" is ["devices", "7",
// "wipe"], "/" is [""]. Policies get them as input.request.segments.
func Segments(path string) []string {
	return strings.Split(strings.ToLower(strings.Trim(path, "/")), "/")
}

func stringsTerm(ss []string) *ast.Term {
	ts := make([]*ast.Term, len(ss))
	for i, s := range ss {
		ts[i] = ast.StringTerm(s)
	}
	return ast.ArrayTerm(ts...)
}
