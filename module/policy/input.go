package policy

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// Call is the part of an HTTP request that policies see.
type Call struct {
	Method   string
	Path     string
	Host     string
	Query    url.Values
	Header   http.Header
	Body     []byte
	RemoteIP string
}

// Caller is the authenticated identity that policies see.
type Caller struct {
	Subject string
	Groups  []string
	Claims  map[string]any
}

// hiddenHeaders never reach a policy: they carry credentials.
var hiddenHeaders = map[string]bool{"authorization": true, "cookie": true, "proxy-authorization": true}

// Input builds the contract's input document.
func Input(c Call, who Caller, now time.Time) map[string]any {
	headers := make(map[string]any, len(c.Header))
	for k, vs := range c.Header {
		lk := strings.ToLower(k)
		if hiddenHeaders[lk] {
			continue
		}
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		headers[lk] = list
	}
	query := make(map[string]any, len(c.Query))
	for k, vs := range c.Query {
		list := make([]any, len(vs))
		for i, v := range vs {
			list[i] = v
		}
		query[k] = list
	}
	groups := make([]any, len(who.Groups))
	for i, g := range who.Groups {
		groups[i] = g
	}
	claims := who.Claims
	if claims == nil {
		claims = map[string]any{}
	}
	return map[string]any{
		"request": map[string]any{
			"method":    c.Method,
			"path":      c.Path,
			"host":      c.Host,
			"query":     query,
			"headers":   headers,
			"body":      parseBody(c.Body),
			"remote_ip": c.RemoteIP,
		},
		"identity": map[string]any{
			"subject": who.Subject,
			"groups":  groups,
			"claims":  claims,
		},
		"time": now.UTC().Format(time.RFC3339),
	}
}

// parseBody returns the body as parsed JSON, or nil when it is empty or not
// JSON.
func parseBody(b []byte) any {
	if len(bytes.TrimSpace(b)) == 0 || !json.Valid(b) {
		return nil
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil
	}
	return v
}
