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
// o.JudgeMethodOverride, and then an override must name one method, once.
// It looks at the headers and the query only: a form body's _method field
// is FormOverride's.
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
			if strings.EqualFold(k, OverrideField) {
				found = append(found, vs...)
				from = OverrideField
			}
		}
	}
	if len(found) == 0 {
		return m, nil
	}
	return m.override(found, from, o)
}

// FormOverride applies a form body's _method field to m, as ReadMethod
// does for headers and the query.
func (b *Body) FormOverride(m Method, o Options) (Method, error) {
	var found []string
	for k, vs := range b.form {
		if strings.EqualFold(k, OverrideField) {
			found = append(found, vs...)
		}
	}
	if len(found) == 0 {
		return m, nil
	}
	if m.From != "" {
		found = append(found, m.Effective)
	}
	return Method{Effective: m.Wire, Wire: m.Wire}.override(found, OverrideField+" (form)", o)
}

// override applies the override values found to m.
func (m Method) override(found []string, from string, o Options) (Method, error) {
	if !o.JudgeMethodOverride {
		return m, refuse(http.StatusBadRequest, CodeMethodOverride,
			"the call asks for another method with %s; the gateway judges the method a call is sent with: send %s as itself", from, found[0])
	}
	want := strings.ToUpper(strings.TrimSpace(found[0]))
	for _, v := range found[1:] {
		if !strings.EqualFold(strings.TrimSpace(v), want) {
			return m, refuse(http.StatusBadRequest, CodeMethodOverride, "the call asks for more than one method (%s and %s)", want, v)
		}
	}
	if want == "" || strings.ContainsAny(want, " ,\t") || !isToken(want) {
		return m, refuse(http.StatusBadRequest, CodeMethodOverride, "the method override %q is not a method", found[0])
	}
	m.Effective, m.From = want, from
	return m, nil
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

// isToken reports whether s is an HTTP token (RFC 9110 section 5.6.2).
func isToken(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`"(),/:;<=>?@[\]{}`, c) >= 0 {
			return false
		}
	}
	return s != ""
}
