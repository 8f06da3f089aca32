package approvals

import (
	"bytes"
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

//go:embed console
var consoleFiles embed.FS

// ConsoleOptions turn on the web console, with login through an OpenID
// Connect provider (authorization code with PKCE).
type ConsoleOptions struct {
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
	// RequestIdentity takes the identity from each request, as the API
	// does, instead of a login: for gateways behind an upstream auth layer
	// (the identity placeholder option). The OpenID fields are then unused.
	RequestIdentity bool
	// HTTPClient talks to the provider. Default: 10s timeout.
	HTTPClient *http.Client
}

// console serves the web pages. Every action goes through the same
// functions as the API.
type console struct {
	s     *Service
	o     ConsoleOptions
	pages map[string]*template.Template

	mu      sync.Mutex
	aead    cipher.AEAD // seals session and login cookies
	csrfKey []byte
	oidc    *oidcClient
}

const (
	sessionCookie = "approval_session"
	loginCookie   = "approval_login"
)

// contentSecurityPolicy allows nothing but the gateway's own files: no
// inline script, no framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"

func newConsole(s *Service, o ConsoleOptions) (*console, error) {
	if !o.RequestIdentity && (o.Issuer == "" || o.ClientID == "" || o.Identify == nil) {
		return nil, errors.New("console: issuer, client id and an identity reader are required")
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
	c := &console{s: s, o: o, pages: map[string]*template.Template{}}
	base, err := template.New("console").Funcs(template.FuncMap{
		"rfc3339":  func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
		"exact":    func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05 MST") },
		"relative": func(t time.Time) string { return relativeTime(t, s.o.Clock()) },
		"human":    func(st record.Status) string { return strings.ReplaceAll(string(st), "_", " ") },
	}).ParseFS(consoleFiles, "console/pages.html")
	if err != nil {
		return nil, err
	}
	for _, p := range []string{"list", "request", "login", "error"} {
		t, err := base.Clone()
		if err == nil {
			_, err = t.New("main").Parse(`{{template "` + p + `-main" .}}`)
		}
		if err != nil {
			return nil, err
		}
		c.pages[p] = t
	}
	return c, nil
}

// keys loads the sealing and CSRF keys from the store's shared secret, so
// every gateway accepts every other's cookies.
func (c *console) keys(ctx context.Context) (cipher.AEAD, []byte, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.aead != nil {
		return c.aead, c.csrfKey, nil
	}
	secret, err := c.s.o.Store.SharedSecret(ctx, "console")
	if err != nil {
		return nil, nil, err
	}
	sealKey := sha256.Sum256(append([]byte("approval-console-seal:"), secret...))
	block, err := aes.NewCipher(sealKey[:])
	if err != nil {
		return nil, nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, nil, err
	}
	csrf := sha256.Sum256(append([]byte("approval-console-csrf:"), secret...))
	c.aead, c.csrfKey = aead, csrf[:]
	return c.aead, c.csrfKey, nil
}

// session is what the sealed session cookie holds.
type session struct {
	Subject string   `json:"s"`
	Groups  []string `json:"g"`
	Expires int64    `json:"e"`
	ID      string   `json:"i"`
	// Token is the provider's access token: the replay of a completion
	// made in the console carries it, as the API's carries the caller's.
	Token string `json:"t,omitempty"`
}

func (c *console) seal(ctx context.Context, purpose string, v any) (string, error) {
	aead, _, err := c.keys(ctx)
	if err != nil {
		return "", err
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(aead.Seal(nonce, nonce, plain, []byte(purpose))), nil
}

func (c *console) open(ctx context.Context, purpose, value string, v any) error {
	aead, _, err := c.keys(ctx)
	if err != nil {
		return err
	}
	raw, err := base64.RawURLEncoding.DecodeString(value)
	if err != nil || len(raw) < aead.NonceSize() {
		return errors.New("malformed cookie")
	}
	plain, err := aead.Open(nil, raw[:aead.NonceSize()], raw[aead.NonceSize():], []byte(purpose))
	if err != nil {
		return errors.New("cookie does not open")
	}
	return json.Unmarshal(plain, v)
}

// setCookie writes a cookie scoped to the console: HttpOnly, SameSite=Lax
// (the provider's redirect back is a top-level navigation), and Secure
// except over plain HTTP to a loopback address, where browsers would drop
// it.
func (c *console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, maxAge int) {
	http.SetCookie(w, &http.Cookie{
		Name: name, Value: value, Path: c.s.o.Prefix + "/", MaxAge: maxAge,
		HttpOnly: true, SameSite: http.SameSiteLaxMode, Secure: r.TLS != nil || !isLoopback(r.Host),
	})
}

func isLoopback(host string) bool {
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// user returns the session of the request, if any and valid: its cookie
// opens, it has not expired, and the store still holds it (a sign-out on
// any gateway removes it). err is a store failure: no session can be
// trusted then.
func (c *console) user(r *http.Request) (*session, *identity.Identity, error) {
	if c.o.RequestIdentity {
		who, err := c.s.o.Identity.Authenticate(r)
		if err != nil {
			return nil, nil, nil
		}
		// No login and no cookie: the CSRF token is bound to the subject.
		return &session{Subject: who.Subject, Groups: who.Groups, ID: "request:" + who.Subject}, who, nil
	}
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil, nil, nil
	}
	var sess session
	if err := c.open(r.Context(), "session", ck.Value, &sess); err != nil || time.Now().Unix() > sess.Expires || sess.Subject == "" {
		return nil, nil, nil
	}
	open, err := c.s.o.Store.SessionOpen(r.Context(), sess.ID)
	if err != nil || !open {
		return nil, nil, err
	}
	return &sess, &identity.Identity{Subject: sess.Subject, Groups: sess.Groups}, nil
}

func (c *console) csrfToken(ctx context.Context, sess *session) string {
	_, key, err := c.keys(ctx)
	if err != nil {
		return ""
	}
	m := hmac.New(sha256.New, key)
	m.Write([]byte(sess.ID))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// checkPost refuses a form post without the session's CSRF token or from
// another origin.
func (c *console) checkPost(r *http.Request, sess *session) bool {
	want := c.csrfToken(r.Context(), sess)
	if want == "" || !hmac.Equal([]byte(r.PostFormValue("csrf")), []byte(want)) {
		return false
	}
	from := r.Header.Get("Origin")
	if from == "" || from == "null" {
		from = r.Header.Get("Referer")
	}
	u, err := url.Parse(from)
	return err == nil && u.Host != "" && u.Host == r.Host
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

	Request                                     *record.Record
	Body                                        string
	BodyFolded                                  bool
	BodySize                                    int
	Actions, CanApprove, CanComplete, CanCancel bool
}

// serve routes the console: everything under the prefix that is not the
// API.
func (c *console) serve(w http.ResponseWriter, r *http.Request, next Next) {
	h := w.Header()
	h.Set("Content-Security-Policy", contentSecurityPolicy)
	h.Set("X-Frame-Options", "DENY")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	rest := strings.TrimPrefix(r.URL.Path, c.s.o.Prefix)
	switch {
	case strings.HasPrefix(rest, "/assets/"):
		c.asset(w, r, strings.TrimPrefix(rest, "/assets/"))
		return
	case rest == "/login" && !c.o.RequestIdentity:
		c.login(w, r)
		return
	case rest == "/callback" && !c.o.RequestIdentity:
		c.callback(w, r)
		return
	}
	h.Set("Cache-Control", "no-store")
	sess, who, err := c.user(r)
	if err != nil {
		c.fail(w, r, &page{}, http.StatusServiceUnavailable, CodeStoreUnavailable)
		return
	}
	if who == nil && c.o.RequestIdentity {
		c.fail(w, r, &page{}, http.StatusUnauthorized, CodeUnauthenticated)
		return
	}
	if who == nil {
		if r.Method != http.MethodGet {
			c.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Sign in", Message: "Your session has ended: sign in again.", Next: c.s.o.Prefix + "/requests"})
			return
		}
		c.render(w, r, http.StatusOK, "login", &page{Title: "Sign in", Next: r.URL.RequestURI()})
		return
	}
	p := &page{User: who, Admin: c.s.isAdmin(who), CSRF: c.csrfToken(r.Context(), sess)}
	parts := strings.Split(strings.Trim(rest, "/"), "/")
	switch {
	case rest == "" || rest == "/":
		http.Redirect(w, r, c.s.o.Prefix+"/requests?view=received", http.StatusSeeOther)
	case rest == "/logout" && r.Method == http.MethodPost:
		if !c.checkPost(r, sess) {
			c.fail(w, r, p, http.StatusForbidden, "csrf")
			return
		}
		if err := c.s.o.Store.CloseSession(r.Context(), sess.ID); err != nil {
			c.fail(w, r, p, http.StatusServiceUnavailable, CodeStoreUnavailable)
			return
		}
		c.setCookie(w, r, sessionCookie, "", -1)
		c.s.log.Info("console sign-out", zap.String("subject", sess.Subject))
		http.Redirect(w, r, c.s.o.Prefix+"/requests", http.StatusSeeOther)
	case rest == "/live":
		c.live(w, r, sess, who)
	case len(parts) == 1 && parts[0] == "requests":
		c.list(w, r, p)
	case len(parts) == 2 && parts[0] == "requests" && r.Method == http.MethodGet:
		c.request(w, r, p, parts[1], http.StatusOK)
	case len(parts) == 3 && parts[0] == "requests" && r.Method == http.MethodPost:
		if !c.checkPost(r, sess) {
			c.fail(w, r, p, http.StatusForbidden, "csrf")
			return
		}
		c.act(w, r, p, sess, parts[1], parts[2], next)
	default:
		c.fail(w, r, p, http.StatusNotFound, CodeNotFound)
	}
}

func (c *console) asset(w http.ResponseWriter, r *http.Request, name string) {
	types := map[string]string{"console.css": "text/css; charset=utf-8", "console.js": "text/javascript; charset=utf-8"}
	b, err := fs.ReadFile(consoleFiles, "console/"+name)
	if err != nil || types[name] == "" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", types[name])
	w.Header().Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(b)
}

func (c *console) render(w http.ResponseWriter, r *http.Request, status int, name string, p *page) {
	p.Prefix = c.s.o.Prefix
	if p.User != nil {
		p.Waiting = c.waiting(r, p.User)
	}
	var buf bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&buf, "layout", p); err != nil {
		c.s.log.Error("rendering the console", zap.String("page", name), zap.Error(err))
		http.Error(w, "the page could not be rendered", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, _ = w.Write(buf.Bytes())
}

// waiting counts the requests the user could approve now.
func (c *console) waiting(r *http.Request, who *identity.Identity) int {
	if len(who.Groups) == 0 {
		return 0
	}
	recs, _, err := c.s.o.Store.List(r.Context(), store.ListOptions{Groups: who.Groups, Statuses: []record.Status{record.NeedsApproval}, Limit: 100})
	if err != nil {
		return 0
	}
	n := 0
	for _, rec := range recs {
		if me := c.s.principal(who); !me.Is(rec.Requester.Subject) && !slices.ContainsFunc(rec.ApprovedBy(), me.Is) {
			n++
		}
	}
	return n
}

func (c *console) list(w http.ResponseWriter, r *http.Request, p *page) {
	q := r.URL.Query()
	p.View = q.Get("view")
	if p.View == "" {
		p.View = "mine"
	}
	p.Heading = map[string]string{"mine": "My requests", "received": "Received requests", "all": "All requests"}[p.View]
	p.Title = p.Heading
	p.Statuses = record.Statuses
	p.Filter.Status, p.Filter.Policy, p.Filter.Requester = q.Get("status"), q.Get("policy"), q.Get("requester")
	o, err := c.s.listOptions(q, p.User)
	if err == nil && o != nil {
		if o.Limit == 0 {
			o.Limit = 25
		}
		p.Requests, p.Next, err = c.s.o.Store.List(r.Context(), *o)
	}
	if err != nil {
		p.Heading, p.Message = "Requests", c.explain(err)
		c.render(w, r, asAPIError(err).status, "list", p)
		return
	}
	if p.Next != "" {
		nq := url.Values{}
		for k, v := range q {
			nq[k] = v
		}
		nq.Set("cursor", p.Next)
		p.NextURL = c.s.o.Prefix + "/requests?" + nq.Encode()
	}
	c.render(w, r, http.StatusOK, "list", p)
}

// foldAt is the body size past which the page folds it.
const foldAt = 4 << 10

func (c *console) request(w http.ResponseWriter, r *http.Request, p *page, id string, status int) {
	rec, body, err := c.s.load(r, p.User, id)
	if err != nil {
		c.fail(w, r, p, asAPIError(err).status, asAPIError(err).code)
		return
	}
	p.Request, p.Title, p.BodySize = rec, rec.Operation.Method+" "+rec.Operation.Target(), len(body)
	var pretty bytes.Buffer
	if json.Indent(&pretty, body, "", "  ") == nil {
		p.Body = pretty.String()
	} else {
		p.Body = string(bytes.ToValidUTF8(body, []byte("�")))
	}
	p.BodyFolded = len(body) > foldAt
	if msg := r.URL.Query().Get("done"); msg != "" {
		p.Done = map[string]string{"approve": "Your approval is recorded.", "reject": "The request is rejected; the requester sees your notes.",
			"cancel": "The request is canceled.", "complete": "The call was sent to the backend; its answer is below."}[msg]
	}
	if code := r.URL.Query().Get("error"); code != "" {
		p.Message = c.explainCode(code, rec.Status)
	}
	// The buttons are the actions the record allows this person; the
	// approve form is also shown to a requester who is an approver, who
	// is then told why not.
	me := c.s.principal(p.User)
	err = rec.Can(record.ActionApprove, me)
	var re *record.Error
	p.CanApprove = err == nil || (errors.As(err, &re) && re.Code == record.CodeSelfApproval && rec.IsApprover(me) &&
		record.Allowed(record.ActionApprove, rec.Status))
	p.CanComplete = rec.Can(record.ActionClaim, me) == nil
	p.CanCancel = rec.Can(record.ActionCancel, me) == nil
	p.Actions = p.CanApprove || p.CanComplete || p.CanCancel
	c.render(w, r, status, "request", p)
}

// act carries out a form's action through the API's code path, then shows
// the request with the outcome.
func (c *console) act(w http.ResponseWriter, r *http.Request, p *page, sess *session, id, action string, next Next) {
	if !store.ValidID(id) {
		c.fail(w, r, p, http.StatusNotFound, CodeNotFound)
		return
	}
	in := actionInput{Notes: r.PostFormValue("notes"), PayloadSHA256: r.PostFormValue("payload_sha256")}
	var err error
	if action == "complete" {
		err = c.complete(r, p.User, sess, id, next)
	} else if len([]rune(in.Notes)) > maxNotes {
		err = fail(http.StatusBadRequest, CodeBadRequest, "notes are too long")
	} else {
		_, err = c.s.perform(r, p.User, id, action, in, next)
	}
	target := c.s.o.Prefix + "/requests/" + id
	if err != nil {
		target += "?error=" + url.QueryEscape(asAPIError(err).code)
	} else {
		target += "?done=" + url.QueryEscape(action)
	}
	http.Redirect(w, r, target, http.StatusSeeOther)
}

// complete claims and replays a request from the console; the replay
// carries the user's access token from the login.
func (c *console) complete(r *http.Request, who *identity.Identity, sess *session, id string, next Next) error {
	auth := r.Header.Get("Authorization") // an upstream layer's own
	if sess.Token != "" {
		auth = "Bearer " + sess.Token
	}
	_, err := c.s.claimAndReplay(&captureWriter{ResponseWriter: &discardWriter{h: http.Header{}}, limit: c.s.o.ResultExcerpt}, r, who, id, auth, next)
	return err
}

func (c *console) fail(w http.ResponseWriter, r *http.Request, p *page, status int, code string) {
	p.Title, p.Heading = "Not possible", "That did not work"
	if status == http.StatusNotFound {
		p.Heading = "No such page or request"
	}
	p.Message = c.explainCode(code, "")
	c.render(w, r, status, "error", p)
}

func (c *console) explain(err error) string {
	e := asAPIError(err)
	if e.code == CodeBadRequest {
		return e.message
	}
	return c.explainCode(e.code, "")
}

// explainCode puts an error code in words a person understands.
func (c *console) explainCode(code string, st record.Status) string {
	switch code {
	case record.CodeSelfApproval:
		return "You can't approve or reject your own request: another approver has to."
	case record.CodeNotAnApprover:
		return "You aren't in a group that approves this request."
	case record.CodeNotTheRequester:
		return "Only the person who made the request can do that."
	case record.CodeInvalidTransition:
		if st != "" {
			return fmt.Sprintf("This request is %s now, so that can't be done any more.", strings.ReplaceAll(string(st), "_", " "))
		}
		return "The request has moved on, so that can't be done any more."
	case record.CodeAlreadyApproved:
		return "You have already approved this request."
	case record.CodeRequirementMet:
		return "The approvals your groups can give are already in; the request waits for other groups."
	case record.CodeNotesRequired:
		return "Please write a note saying why."
	case record.CodeStalePayload:
		return "The request is not the one you looked at. Reload the page and check it again."
	case "csrf":
		return "This form expired or came from another site. Reload the page and try again."
	case CodeStoreUnavailable:
		return "The approval store can't be reached right now. Try again in a moment."
	case CodeNotFound:
		return "There is no such request, or you can't see it."
	case CodeForbidden:
		return "You aren't allowed to see this."
	case CodeUnauthenticated:
		return "Your identity did not come with the request: sign in through your organisation's portal first."
	case CodeReplayFailed:
		return "The backend could not be reached; the request is failed and will not be sent again."
	}
	return "Something went wrong. Try again, or ask an administrator."
}

// live streams a server-sent event whenever a request the user may see
// changes (from the store's watch), so pages update without reload.
func (c *console) live(w http.ResponseWriter, r *http.Request, sess *session, who *identity.Identity) {
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": live\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	me := c.s.principal(who)
	admin := c.s.isAdmin(who)
	changed := make(chan *record.Record, 64)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go c.s.o.Store.WatchRequests(ctx, func(rec *record.Record) {
		if rec.IsParty(me, admin) {
			select {
			case changed <- rec:
			default: // the page reloads anyway
			}
		}
	})
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case rec := <-changed:
			b, _ := json.Marshal(map[string]string{"id": rec.ID, "status": string(rec.Status)})
			_, _ = fmt.Fprintf(w, "event: request\ndata: %s\n\n", b)
		case <-ping.C:
			// A stream ends with its session: signed out anywhere, or
			// expired.
			if open, err := c.s.o.Store.SessionOpen(ctx, sess.ID); !c.o.RequestIdentity && (err != nil || !open || time.Now().Unix() > sess.Expires) {
				return
			}
			_, _ = fmt.Fprint(w, ": ping\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// relativeTime says how far t is from now, for people.
func relativeTime(t, now time.Time) string {
	d := t.Sub(now)
	future := d > 0
	if d < 0 {
		d = -d
	}
	var s string
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		s = plural(int(d/time.Minute), "minute")
	case d < 48*time.Hour:
		s = plural(int(d/time.Hour), "hour")
	default:
		s = plural(int(d/(24*time.Hour)), "day")
	}
	if future {
		return "in " + s
	}
	return s + " ago"
}

func plural(n int, unit string) string {
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
}
