// Package console is the gateway's web console: server-rendered pages of
// the requests a person may see, with forms to approve, reject, cancel and
// complete them that go through the request flow's own code (its Flow),
// sign-in through an OpenID Connect provider (authorization code with
// PKCE), sealed session cookies kept in the store, CSRF tokens and a
// strict Content-Security-Policy. Assets are embedded; no build step.
package console

import (
	"bytes"
	"context"
	"crypto/cipher"
	"embed"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

//go:embed assets
var assets embed.FS

// Options turn on the web console, with login through an OpenID Connect
// provider (authorization code with PKCE).
type Options struct {
	// Issuer is the OpenID provider; ClientID and ClientSecret the
	// gateway's registration there.
	Issuer       string
	ClientID     string
	ClientSecret string
	// RedirectURL is where the provider sends the browser back. Default:
	// the request's scheme and host, then {prefix}/callback.
	RedirectURL string
	// Scopes asked for besides openid. Default: profile, email, groups.
	Scopes []string
	// SessionTTL bounds a console session. Default 8h.
	SessionTTL time.Duration
	// Identify reads subject and groups from the ID token's claims (the
	// same claim paths as the API's tokens).
	Identify func(map[string]any) (*identity.Identity, error)
	// RequestIdentity takes the identity from each request (Identity), as
	// the API does, instead of a login: for gateways behind an upstream
	// auth layer. The OpenID fields are then unused.
	RequestIdentity bool
	// HTTPClient talks to the provider. Default: 10s timeout.
	HTTPClient *http.Client
}

// Deps are what a Console is built from.
type Deps struct {
	// Flow carries out every action, as the API does.
	Flow approvals.Flow
	// Store keeps sessions, the sealing key, and the watch that updates
	// pages live.
	Store *store.Store
	// Identity authenticates requests when RequestIdentity is set.
	Identity approvals.Authenticator
	// Prefix is where the console lives (the API's prefix).
	Prefix string
	// Clock returns the current time. Default time.Now.
	Clock  func() time.Time
	Logger *zap.Logger
}

// Console serves the web pages under the prefix.
type Console struct {
	o      Options
	flow   approvals.Flow
	store  *store.Store
	ident  approvals.Authenticator
	prefix string
	clock  func() time.Time
	log    *zap.Logger
	pages  map[string]*template.Template
	mux    *http.ServeMux

	mu      sync.Mutex
	aead    cipher.AEAD // seals session and login cookies
	csrfKey []byte
	oidc    *oidcClient
}

// contentSecurityPolicy allows nothing but the gateway's own files: no
// inline script, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

// New checks o and returns a Console.
func New(d Deps, o Options) (*Console, error) {
	if d.Flow == nil || d.Store == nil {
		return nil, errors.New("console: a flow and a store are required")
	}
	if !o.RequestIdentity && (o.Issuer == "" || o.ClientID == "" || o.Identify == nil) {
		return nil, errors.New("console: issuer, client id and an identity reader are required")
	}
	if o.RequestIdentity && d.Identity == nil {
		return nil, errors.New("console: an authenticator is required to take the identity from each request")
	}
	if o.SessionTTL <= 0 {
		o.SessionTTL = 8 * time.Hour
	}
	if len(o.Scopes) == 0 {
		o.Scopes = []string{"profile", "email", "groups"}
	}
	if o.HTTPClient == nil {
		o.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	c := &Console{o: o, flow: d.Flow, store: d.Store, ident: d.Identity, prefix: d.Prefix, clock: d.Clock, log: d.Logger,
		pages: map[string]*template.Template{}}
	if c.clock == nil {
		c.clock = time.Now
	}
	if c.log == nil {
		c.log = zap.NewNop()
	}
	base, err := template.New("console").Funcs(template.FuncMap{
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"exact":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
		"relative": func(t time.Time) string { return relativeTime(t, c.clock()) },
		"human":    func(st record.Status) string { return strings.ReplaceAll(string(st), "_", " ") },
	}).ParseFS(assets, "assets/pages.html")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"list", "request", "login", "error", "stepup"} {
		t, err := base.Clone()
		if err == nil {
			_, err = t.New("main").Parse(`{{template "` + p + `-main" .}}`)
		}
		if err != nil {
			return nil, err
		}
		c.pages[p] = t
	}
	c.routes()
	return c, nil
}

// routes is the console's route table.
func (c *Console) routes() {
	m, p := http.NewServeMux(), c.prefix
	m.HandleFunc("GET "+p+"/assets/{name}", c.asset)
	if !c.o.RequestIdentity {
		m.HandleFunc("GET "+p+"/login", c.login)
		m.HandleFunc("GET "+p+"/callback", c.callback)
	}
	m.Handle("GET "+p+"/{$}", c.signedIn(c.home))
	m.Handle("GET "+p, c.signedIn(c.home))
	m.Handle("POST "+p+"/logout", c.signedIn(c.logout))
	m.Handle("GET "+p+"/live", c.signedIn(c.live))
	m.Handle("GET "+p+"/requests", c.signedIn(c.list))
	m.Handle("GET "+p+"/requests/{id}", c.signedIn(c.request))
	m.Handle("POST "+p+"/requests/{id}/{action}", c.signedIn(c.act))
	m.Handle(p+"/", c.signedIn(func(w http.ResponseWriter, r *http.Request, v *visit) {
		c.fail(w, r, v.page, http.StatusNotFound, approvals.CodeNotFound)
	}))
	c.mux = m
}

// nextKey carries the rest of the handler chain (where a completion's
// replay goes) to the route handlers.
type nextKey struct{}

// ServeHTTP serves a console request; next is where a completion's replay
// goes.
func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request, next approvals.Next) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	c.mux.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), nextKey{}, next)))
}

// visit is a signed-in request: its session, who, and the page being built.
type visit struct {
	sess *session
	who  *identity.Identity
	page *page
}

// signedIn runs fn for a signed-in person; others get the sign-in page
// (or a 401 behind an upstream auth layer).
func (c *Console) signedIn(fn func(http.ResponseWriter, *http.Request, *visit)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		sess, who, err := c.user(r)
		switch {
		case err != nil:
			c.fail(w, r, &page{}, http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
		case who == nil && c.o.RequestIdentity:
			c.fail(w, r, &page{}, http.StatusUnauthorized, approvals.CodeUnauthenticated)
		case who == nil && r.Method != http.MethodGet:
			c.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Sign in", Message: "Your session has ended: sign in again.", Next: c.prefix + "/requests"})
		case who == nil:
			c.render(w, r, http.StatusOK, "login", &page{Title: "Sign in", Next: r.URL.RequestURI()})
		default:
			fn(w, r, &visit{sess: sess, who: who, page: &page{User: who, Admin: c.flow.IsAdmin(who), CSRF: c.csrfToken(r.Context(), sess)}})
		}
	})
}

func (c *Console) home(w http.ResponseWriter, r *http.Request, _ *visit) {
	http.Redirect(w, r, c.prefix+"/requests?view=received", http.StatusSeeOther)
}

func (c *Console) logout(w http.ResponseWriter, r *http.Request, v *visit) {
	if !c.checkPost(r, v.sess) {
		c.fail(w, r, v.page, http.StatusForbidden, "csrf")
		return
	}
	if err := c.store.CloseSession(r.Context(), v.sess.ID); err != nil {
		c.fail(w, r, v.page, http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
		return
	}
	c.setCookie(w, r, sessionCookie, "", -1)
	c.log.Info("console sign-out", zap.String("subject", v.sess.Subject))
	http.Redirect(w, r, c.prefix+"/requests", http.StatusSeeOther)
}

// act carries out a form's action through the flow, then shows the
// request with the outcome.
func (c *Console) act(w http.ResponseWriter, r *http.Request, v *visit) {
	if !c.checkPost(r, v.sess) {
		c.fail(w, r, v.page, http.StatusForbidden, "csrf")
		return
	}
	id, action := r.PathValue("id"), r.PathValue("action")
	if !store.ValidID(id) {
		c.fail(w, r, v.page, http.StatusNotFound, approvals.CodeNotFound)
		return
	}
	next, _ := r.Context().Value(nextKey{}).(approvals.Next)
	var err error
	if action == "complete" {
		// The replay carries the user's access token from the login, or an
		// upstream layer's own Authorization.
		auth := r.Header.Get("Authorization")
		if v.sess.Token != "" {
			auth = "Bearer " + v.sess.Token
		}
		err = c.flow.Complete(r, v.who, id, auth, next)
	} else {
		notes, hash := r.PostFormValue("notes"), r.PostFormValue("payload_sha256")
		_, err = c.flow.Act(r, v.who, id, action, notes, hash, next)
		if err != nil && c.stepUp(w, r, v, err, pendingAction{ID: id, Action: action, Notes: notes, PayloadSHA256: hash}) {
			return
		}
	}
	http.Redirect(w, r, c.outcome(id, action, err), http.StatusSeeOther)
}

// outcome is the request's page with the outcome of an action on it.
func (c *Console) outcome(id, action string, err error) string {
	target := c.prefix + "/requests/" + id
	if err != nil {
		_, code, _ := approvals.ErrorOf(err)
		return target + "?error=" + url.QueryEscape(code)
	}
	return target + "?done=" + url.QueryEscape(action)
}

// page is what the templates see.
type page struct {
	Title, Prefix, View, Heading, Message, Done, CSRF string
	User                                              *identity.Identity
	Admin                                             bool
	Waiting                                           int

	Requests []*record.Record
	Statuses []record.Status
	Filter   struct{ Status, Policy, Requester string }
	Next     string
	NextURL  string

	Request    *record.Record
	Body       string
	BodyFolded bool
	BodySize   int
	// Diff is the change the request makes to its target (PUT, PATCH,
	// DELETE while open); PreviewNote says why there is none.
	Diff        []approvals.PreviewRow
	PreviewNote string
	// StepUpURL is where a person signs in again for a step-up.
	StepUpURL                                   string
	Actions, CanApprove, CanComplete, CanCancel bool
}

func (c *Console) asset(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("name")
	types := map[string]string{"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
	b, err := fs.ReadFile(assets, "assets/"+name)
	if err != nil || types[name] == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", types[name])
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}

func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.Prefix = c.prefix
	if p.User != nil {
		p.Waiting = c.waiting(r, p.User)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.log.Error("rendering the console", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}
