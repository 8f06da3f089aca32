package approvals

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/store"
)

// routes is the approval API's route table, under {prefix}/api/v1, with
// the health check beside it. Each route is one operation of the OpenAPI
// document (openapi.json), which the tests hold to this table.
func (s *Service) routes() *http.ServeMux {
	m, a := http.NewServeMux(), s.api
	m.HandleFunc("GET "+s.Prefix+"/healthz", s.healthz)
	m.HandleFunc("GET "+s.Prefix+"/.well-known/jwks.json", s.jwks)
	m.HandleFunc("GET "+a+"/openapi.json", s.openAPI)
	m.Handle("GET "+a+"/health", s.authed(s.health))
	m.Handle("GET "+a+"/requests", s.authed(s.list))
	m.Handle("GET "+a+"/requests/{id}", s.authed(s.get))
	m.Handle("GET "+a+"/requests/{id}/preview", s.authed(s.preview))
	m.Handle("POST "+a+"/requests/{id}/approve", s.authed(s.act("approve")))
	m.Handle("POST "+a+"/requests/{id}/reject", s.authed(s.act("reject")))
	m.Handle("POST "+a+"/requests/{id}/cancel", s.authed(s.act("cancel")))
	m.Handle("POST "+a+"/requests/{id}/complete", s.authed(s.act("complete")))
	m.Handle("GET "+a+"/events", s.authed(s.events))
	m.Handle("GET "+a+"/audit", s.authed(s.auditLog))
	m.Handle("GET "+a+"/audit/verify", s.authed(s.verifyAudit))
	m.Handle("GET "+a+"/audit/export", s.authed(s.exportAudit))
	m.Handle("GET "+a+"/notify/deliveries", s.authed(s.deliveries))
	m.Handle("GET "+a+"/policies", s.authed(s.listPolicies))
	m.Handle("POST "+a+"/policies/evaluate", s.authed(s.evaluate))
	m.Handle("GET "+a+"/policies/{name}", s.authed(s.getPolicy))
	m.Handle("PUT "+a+"/policies/{name}", s.authed(s.proposePolicy))
	m.Handle("DELETE "+a+"/policies/{name}", s.authed(s.proposePolicy))
	return m
}

// nextKey carries the rest of the handler chain (where a completion's
// replay goes) to the route handlers.
type nextKey struct{}

// serveAPI serves an API call through the route table; an unknown route is
// a 404 and a known one with another method a 405 (with Allow), both as
// the contract's JSON errors.
func (s *Service) serveAPI(w http.ResponseWriter, r *http.Request, next Next) {
	r = r.WithContext(context.WithValue(r.Context(), nextKey{}, next))
	if r.URL.Path == s.api+"/policies/evaluate" && r.Method != http.MethodPost {
		// The evaluation call, not a runtime policy named evaluate: a
		// concrete path comes before a templated one (as OpenAPI reads
		// paths), whatever the method.
		methodNotAllowed(w, http.MethodPost)
		return
	}
	h, pattern := s.mux.Handler(r)
	if pattern != "" {
		s.mux.ServeHTTP(w, r) // sets the path values
		return
	}
	// The table's own answer says 404 or 405 (and which methods).
	probe := &headerOnly{h: http.Header{}}
	h.ServeHTTP(probe, r)
	if probe.status == http.StatusMethodNotAllowed {
		methodNotAllowed(w, probe.h.Get("Allow"))
		return
	}
	writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such API call"))
}

// canonicalPath reports whether a path under the prefix is spelt as the
// route tables spell their paths: without escapes (no id, name or page
// needs one), empty segments, or "." and ".." segments. Go's ServeMux
// would answer another spelling with a redirect to the clean path.
func canonicalPath(u *url.URL) bool {
	p := u.Path
	if u.RawPath != "" || strings.Contains(p, "//") || strings.Contains(p, "%") {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}

// methodNotAllowed answers 405, with the methods the path has.
func methodNotAllowed(w http.ResponseWriter, allow string) {
	w.Header().Set("Allow", allow)
	writeError(w, fail(http.StatusMethodNotAllowed, CodeMethodNotAllowed, "use "+allow))
}

// authed runs fn for an authenticated caller; a request id in the path
// that is not one is a 404 at once.
func (s *Service) authed(fn func(http.ResponseWriter, *http.Request, *identity.Identity)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		who, err := s.authenticate(r)
		if err != nil {
			writeError(w, err)
			return
		}
		if id := r.PathValue("id"); id != "" && !store.ValidID(id) {
			writeError(w, fail(http.StatusNotFound, CodeNotFound, "no such request"))
			return
		}
		fn(w, r, who)
	})
}

// next is the rest of the handler chain of an API call.
func nextOf(r *http.Request) Next {
	next, _ := r.Context().Value(nextKey{}).(Next)
	return next
}

// headerOnly records a status and headers, and drops the body.
type headerOnly struct {
	h      http.Header
	status int
}

func (p *headerOnly) Header() http.Header         { return p.h }
func (p *headerOnly) Write(b []byte) (int, error) { return len(b), nil }
func (p *headerOnly) WriteHeader(status int)      { p.status = status }
