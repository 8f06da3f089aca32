package console

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/zap"
	"golang.org/x/oauth2"
)

// oidcClient is the console's OpenID Connect relying party, discovered
// from the issuer on first use.
type oidcClient struct {
	provider *oidc.Provider
	verifier *oidc.IDTokenVerifier
}

func (c *Console) provider(ctx context.Context) (*oidcClient, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.oidc != nil {
		return c.oidc, nil
	}
	ctx = oidc.ClientContext(ctx, c.o.HTTPClient)
	p, err := oidc.NewProvider(ctx, c.o.Issuer)
	if err != nil {
		return nil, err
	}
	c.oidc = &oidcClient{provider: p, verifier: p.Verifier(&oidc.Config{ClientID: c.o.ClientID})}
	return c.oidc, nil
}

func (c *Console) oauth(r *http.Request, p *oidcClient) *oauth2.Config {
	redirect := c.o.RedirectURL
	if redirect == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		redirect = scheme + "://" + r.Host + c.prefix + "/callback"
	}
	return &oauth2.Config{ClientID: c.o.ClientID, ClientSecret: c.o.ClientSecret, Endpoint: p.provider.Endpoint(),
		RedirectURL: redirect, Scopes: append([]string{oidc.ScopeOpenID}, c.o.Scopes...)}
}

// loginState is what the sealed login cookie carries across the
// provider's round trip.
type loginState struct {
	State    string `json:"s"`
	Verifier string `json:"v"`
	Nonce    string `json:"n"`
	Next     string `json:"x"`
	Expires  int64  `json:"e"`
	// Pending names an approval or rejection that asked for a fresh
	// authentication (step-up), held sealed in the store (its notes may
	// not fit a cookie): carried out once its person is back.
	Pending string `json:"p,omitempty"`
}

// pendingAction is a decision made in the console, waiting for a step-up.
type pendingAction struct {
	Subject, ID, Action, Notes, PayloadSHA256 string
}

func randomString() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login sends the browser to the provider (authorization code with PKCE).
func (c *Console) login(w http.ResponseWriter, r *http.Request) {
	p, err := c.provider(r.Context())
	if err != nil {
		c.log.Error("OpenID provider discovery", zap.String("issuer", c.o.Issuer), zap.Error(err))
		c.render(w, r, http.StatusBadGateway, "login", &page{Title: "Sign in", Message: "The sign-in service can't be reached right now. Try again in a moment."})
		return
	}
	next := r.URL.Query().Get("next")
	if !strings.HasPrefix(next, c.prefix+"/") || strings.HasPrefix(next, "//") {
		next = c.prefix + "/requests?view=received"
	}
	if u, ok := c.authorization(w, r, p, loginState{Next: next}); ok {
		http.Redirect(w, r, u, http.StatusFound)
	}
}

// authorization starts an authorization (code with PKCE, a nonce) that
// comes back to st.Next, with the extra parameters (max_age, acr_values),
// and returns the provider's URL to send the browser to; false when it
// answered already (a store failure).
func (c *Console) authorization(w http.ResponseWriter, r *http.Request, p *oidcClient, st loginState, extra ...oauth2.AuthCodeOption) (string, bool) {
	st.State, st.Verifier, st.Nonce, st.Expires = randomString(), oauth2.GenerateVerifier(), randomString(), c.clock().Add(10*time.Minute).Unix()
	sealed, err := c.seal(r.Context(), "login", st)
	if err != nil {
		c.fail(w, r, &page{}, http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
		return "", false
	}
	c.setCookie(w, r, loginCookie, sealed, 600)
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(st.Verifier), oidc.Nonce(st.Nonce)}, extra...)
	return c.oauth(r, p).AuthCodeURL(st.State, opts...), true
}

// stepUp sends a person whose approval or rejection asked for a fresher or
// stronger authentication (RFC 9470) through the provider again, asking
// what the request asks (max_age, acr_values), with the decision to carry
// out when they are back. It reports false when the console cannot (no
// provider: an upstream layer authenticates).
func (c *Console) stepUp(w http.ResponseWriter, r *http.Request, v *visit, err error, pending pendingAction) bool {
	maxAge, acr, ok := approvals.StepUpOf(err)
	if !ok || c.o.RequestIdentity || c.o.Issuer == "" {
		return false
	}
	p, perr := c.provider(r.Context())
	if perr != nil {
		return false
	}
	var extra []oauth2.AuthCodeOption
	if maxAge > 0 {
		extra = append(extra, oauth2.SetAuthURLParam("max_age", strconv.FormatInt(maxAge, 10)))
	} else {
		extra = append(extra, oauth2.SetAuthURLParam("prompt", "login"))
	}
	if acr != "" {
		extra = append(extra, oauth2.SetAuthURLParam("acr_values", acr))
	}
	pending.Subject = v.who.Subject
	c.log.Info("console step-up", zap.String("subject", v.who.Subject), zap.String("request_id", pending.ID))
	held := randomString()
	sealed, serr := c.seal(r.Context(), "pending", pending)
	if serr == nil {
		serr = c.store.Hold(r.Context(), held, []byte(sealed), 10*time.Minute)
	}
	if serr != nil {
		c.fail(w, r, v.page, http.StatusServiceUnavailable, approvals.CodeStoreUnavailable)
		return true
	}
	u, ok := c.authorization(w, r, p, loginState{Next: c.prefix + "/requests/" + pending.ID, Pending: held}, extra...)
	if ok {
		// A page with the way on, not a redirect: the form's post may not
		// lead to another site (form-action 'self').
		_, _, msg := approvals.ErrorOf(err)
		if _, why, found := strings.Cut(msg, ": "); found && why != "" {
			msg = strings.ToUpper(why[:1]) + why[1:] // the API's message says what falls short after its lead
		}
		v.page.Title, v.page.Heading, v.page.Message, v.page.StepUpURL = "Sign in again", "Sign in again to "+pending.Action, msg, u
		c.render(w, r, http.StatusOK, "stepup", v.page)
	}
	return true
}

// callback finishes the login: exchanges the code with the PKCE verifier,
// verifies the ID token (issuer, audience, expiry, nonce) and opens a
// session.
func (c *Console) callback(w http.ResponseWriter, r *http.Request) {
	refuse := func(why string, err error) {
		c.log.Info("console login refused", zap.String("reason", why), zap.Error(err))
		c.setCookie(w, r, loginCookie, "", -1)
		c.render(w, r, http.StatusUnauthorized, "login", &page{Title: "Sign in", Message: "Sign-in did not complete (" + why + "). Please try again."})
	}
	ck, err := r.Cookie(loginCookie)
	var st loginState
	if err != nil || c.open(r.Context(), "login", ck.Value, &st) != nil || c.clock().Unix() > st.Expires {
		refuse("the sign-in took too long or was started elsewhere", err)
		return
	}
	if q := r.URL.Query(); q.Get("state") != st.State {
		refuse("state mismatch", nil)
		return
	} else if e := q.Get("error"); e != "" {
		refuse("the provider said "+e, nil)
		return
	}
	p, err := c.provider(r.Context())
	if err != nil {
		refuse("the provider can't be reached", err)
		return
	}
	ctx := oidc.ClientContext(r.Context(), c.o.HTTPClient)
	tok, err := c.oauth(r, p).Exchange(ctx, r.URL.Query().Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		refuse("the code exchange failed", err)
		return
	}
	raw, ok := tok.Extra("id_token").(string)
	if !ok {
		refuse("no ID token", nil)
		return
	}
	idt, err := p.verifier.Verify(ctx, raw)
	if err != nil {
		refuse("the ID token is invalid", err)
		return
	}
	if idt.Nonce != st.Nonce {
		refuse("nonce mismatch", nil)
		return
	}
	var claims map[string]any
	if err := idt.Claims(&claims); err != nil || !identity.StrictClaims(raw) {
		refuse("unreadable claims", err)
		return
	}
	who, err := c.o.Identify(claims)
	if err != nil {
		refuse("the ID token's claims are malformed", err)
		return
	}
	expires := c.clock().Add(c.o.SessionTTL)
	sess := session{Subject: who.Subject, Groups: who.Groups, Expires: expires.Unix(), ID: randomString(), Token: tok.AccessToken,
		Auth: authClaims(claims)}
	sealed, err := c.seal(r.Context(), "session", sess)
	if err == nil {
		err = c.store.OpenSession(r.Context(), sess.ID, c.o.SessionTTL)
	}
	if err != nil {
		refuse("the session could not be opened", err)
		return
	}
	c.setCookie(w, r, loginCookie, "", -1)
	c.setCookie(w, r, sessionCookie, sealed, int(c.o.SessionTTL/time.Second))
	c.log.Info("console login", zap.String("subject", who.Subject))
	c.store.SeenMember(who.Subject, who.Groups, c.clock()) // a verified ID token: its groups' members, for quorum health
	if st.Pending != "" {
		// Back from a step-up: the decision it was asked for (taken once),
		// by the same person only.
		var a pendingAction
		raw, err := c.store.Take(r.Context(), st.Pending)
		if err != nil || raw == nil || c.open(r.Context(), "pending", string(raw), &a) != nil {
			http.Redirect(w, r, st.Next+"?error="+url.QueryEscape("step_up_lost"), http.StatusSeeOther)
			return
		}
		if a.Subject != who.Subject {
			http.Redirect(w, r, st.Next+"?error="+url.QueryEscape(record.CodeNotAnApprover), http.StatusSeeOther)
			return
		}
		who.Claims = sess.Auth
		next, _ := r.Context().Value(nextKey{}).(approvals.Next)
		_, err = c.flow.Act(r, who, a.ID, a.Action, a.Notes, a.PayloadSHA256, next)
		http.Redirect(w, r, c.outcome(a.ID, a.Action, err), http.StatusSeeOther)
		return
	}
	http.Redirect(w, r, st.Next, http.StatusSeeOther)
}

// authClaims are the ID token's claims about the authentication itself.
func authClaims(claims map[string]any) map[string]any {
	out := map[string]any{}
	for _, k := range []string{"auth_time", "acr", "amr"} {
		if v, ok := claims[k]; ok {
			out[k] = v
		}
	}
	return out
}
