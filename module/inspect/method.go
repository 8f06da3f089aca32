package inspect

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// OverrideHeaders are the headers with which frameworks (Express's
// method-override, Rails, Laravel, Symfony, ASP.NET, Google's APIs) let a
// POST stand for another method.
var OverrideHeaders = []string{"X-Http-Method-Override", "X-Http-Method", "X-Method-Override"}

// OverrideField is the query or form field with which Rails, Laravel,
// Symfony and method-override let a call stand for another method.
const OverrideField = "_method"

// Method is the method a call asks for, as the backend will read it.
type Method struct {
	// Effective is the method the backend will execute: the override's,
	// or the request line's.
	Effective string
	// Wire is the request line's method.
	Wire string
	// From names where an override came from (a header or "_method"), or
	// is empty.
	From string
}

// ReadMethod finds the method a call asks for. A method spelt with
// lower-case letters is refused (some frameworks upper-case it, so "delete"
// would be executed as DELETE); so is a method override, unless
// o.JudgeMethodOverride, and then an override must come on a POST (the only
// method Rack, Symfony, Spring and method-override honour it on), name a
// known method, and name one method only. It looks at the headers and the
// query: a body's _method field is Body.Override's.
func ReadMethod(r *http.Request, o Options) (Method, error) {
	m := Method{Effective: r.Method, Wire: r.Method}
	if hasLower(r.Method) {
		return m, refuse(http.StatusBadRequest, CodeInvalidMethod,
			"methods are case-sensitive and %q is not a method the gateway judges; send it in upper case", r.Method)
	}
	var found []string
	var from string
	for k, vs := range r.Header {
		if isOverrideHeader(k) {
			found = append(found, vs...)
			from = k
		}
	}
	if r.URL.RawQuery != "" && mayHoldOverride(r.URL.RawQuery) {
		// ParseQuery keeps the pairs it can read. A pair it drops (a bad
		// escape, a ";" some backends split on) may still spell _method
		// to a backend: then the call is refused.
		q, err := url.ParseQuery(r.URL.RawQuery)
		if err != nil && strings.Contains(strings.ToLower(lenientUnescape(r.URL.RawQuery)), "method") {
			return m, refuse(http.StatusBadRequest, CodeInvalidQuery, "the query does not parse (%v) and may name a method override", err)
		}
		for k, vs := range q {
			if isOverrideField(k) {
				found = append(found, vs...)
				from = OverrideField + " (query)"
			}
		}
	}
	if len(found) == 0 {
		return m, nil
	}
	return m.override(found, from, o)
}

// Override applies the body's _method field (a form's, a JSON object's, or
// that of a body with no type, which Rack reads as a form) to m, as
// ReadMethod does for headers and the query; all must agree.
func (b *Body) Override(m Method, o Options) (Method, error) {
	if len(b.overrides) == 0 {
		return m, nil
	}
	found := b.overrides
	if m.From != "" {
		found = append(slices.Clone(found), m.Effective)
	}
	return Method{Effective: m.Wire, Wire: m.Wire}.override(found, OverrideField+" (body)", o)
}

// overridable are the methods an override may name when overrides are
// judged.
var overridable = []string{"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}

// override applies the override values found to m.
func (m Method) override(found []string, from string, o Options) (Method, error) {
	if !o.JudgeMethodOverride {
		return m, refuse(http.StatusBadRequest, CodeMethodOverride,
			"the call asks for another method with %s; the gateway judges the method a call is sent with: send %s as itself", from, found[0])
	}
	if m.Wire != http.MethodPost {
		return m, refuse(http.StatusBadRequest, CodeMethodOverride,
			"a method override is judged on a POST only (backends differ on other methods), and this is a %s", m.Wire)
	}
	want := asciiUpper(strings.TrimSpace(found[0]))
	if !slices.Contains(overridable, want) {
		return m, refuse(http.StatusBadRequest, CodeMethodOverride, "the method override %q is not one of %s", found[0], strings.Join(overridable, ", "))
	}
	for _, v := range found[1:] {
		if asciiUpper(strings.TrimSpace(v)) != want {
			return m, refuse(http.StatusBadRequest, CodeMethodOverride, "the call asks for more than one method (%s and %s)", want, v)
		}
	}
	m.Effective, m.From = want, from
	return m, nil
}

// asciiUpper upper-cases ASCII letters only: Unicode case mapping would
// turn "poſt" into POST.
func asciiUpper(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'a' <= c && c <= 'z' {
			b[i] = c - 'a' + 'A'
		}
	}
	return string(b)
}

// isOverrideField reports whether a query or form field name is _method as
// some backend reads it: in any case, and with ".", " " and "[" read as
// "_", as PHP does (".method" is $_POST["_method"]).
func isOverrideField(k string) bool {
	if len(k) != len(OverrideField) {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		switch {
		case c == '.' || c == ' ' || c == '[':
			c = '_'
		case 'A' <= c && c <= 'Z':
			c += 'a' - 'A'
		}
		if c != OverrideField[i] {
			return false
		}
	}
	return true
}

// isOverrideHeader reports whether a header name is an override header,
// also spelt with underscores (which CGI, PHP and WSGI backends read as the
// same variable).
func isOverrideHeader(k string) bool {
	if strings.IndexByte(k, '_') >= 0 {
		k = http.CanonicalHeaderKey(strings.ReplaceAll(k, "_", "-"))
	}
	return slices.Contains(OverrideHeaders, k)
}

// QueryMayOverride reports whether a raw query may name _method (for some
// backend, on some method): false means surely not.
func QueryMayOverride(raw string) bool { return mayHoldOverride(raw) }

// mayHoldOverride is a cheap test that a raw query may name _method: it
// holds "method" in any case, or an escape that could spell it.
func mayHoldOverride(raw string) bool {
	if strings.IndexByte(raw, '%') >= 0 {
		return true
	}
	for i := 0; i+len("method") <= len(raw); i++ {
		if strings.EqualFold(raw[i:i+len("method")], "method") {
			return true
		}
	}
	return false
}

// lenientUnescape decodes the valid escapes of s and keeps the rest.
func lenientUnescape(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) {
			if c, ok := unhex(s[i+1], s[i+2]); ok {
				b.WriteByte(c)
				i += 2
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func hasLower(s string) bool {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			return true
		}
	}
	return false
}
