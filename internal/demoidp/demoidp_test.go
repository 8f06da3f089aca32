package demoidp

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// start serves a provider under /oidc of a test server.
func start(t *testing.T) (*Provider, string) {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	p, err := New(Options{Issuer: srv.URL + "/oidc", RedirectURIs: []string{srv.URL + "/.approvals/callback"},
		Identities: []Identity{{"alice", "requester", []string{"it-ops"}}, {"bob", "approver", []string{"approvers", "admins"}}}})
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("/oidc/", p.Handler())
	return p, srv.URL
}

// noRedirects is a browser that shows each redirect instead of following it.
var noRedirects = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// location reads where a redirect goes; it is curried so that it takes a
// call's two results whole: location(t)(client.Get(u)).
func location(t *testing.T) func(*http.Response, error) *url.URL {
	return func(resp *http.Response, err error) *url.URL {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusFound && resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: %d, want a redirect", resp.Request.URL, resp.StatusCode)
		}
		u, err := resp.Location()
		if err != nil {
			t.Fatal(err)
		}
		return u
	}
}

// TestCodeFlowWithPKCE signs bob in as the console does (discovery, code
// with PKCE and a nonce, the identity picked on the sign-in page) and
// checks the ID token a relying party verifies.
func TestCodeFlowWithPKCE(t *testing.T) {
	p, base := start(t)
	ctx := context.Background()
	rp, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	conf := &oauth2.Config{ClientID: p.ClientID(), ClientSecret: p.ClientSecret(), Endpoint: rp.Endpoint(),
		RedirectURL: base + "/.approvals/callback", Scopes: []string{oidc.ScopeOpenID, "profile", "groups"}}
	verifier := oauth2.GenerateVerifier()
	signIn := func(conf *oauth2.Config, subject string) *url.URL {
		login := location(t)(noRedirects.Get(conf.AuthCodeURL("st4te", oauth2.S256ChallengeOption(verifier), oidc.Nonce("n0nce"))))
		page, err := http.Get(login.String())
		if err != nil {
			t.Fatal(err)
		}
		body := new(strings.Builder)
		_, _ = io.Copy(body, page.Body)
		page.Body.Close()
		if page.StatusCode != http.StatusOK || !strings.Contains(body.String(), `value="bob"`) || !strings.Contains(body.String(), "it-ops") {
			t.Fatalf("sign-in page %d:\n%s", page.StatusCode, body)
		}
		cb := location(t)(noRedirects.PostForm(base+"/oidc/login", url.Values{"id": {login.Query().Get("id")}, "subject": {subject}}))
		return location(t)(noRedirects.Get(cb.String()))
	}
	back := signIn(conf, "bob")
	if back.Path != "/.approvals/callback" || back.Query().Get("state") != "st4te" || back.Query().Get("code") == "" {
		t.Fatalf("back at the client with %s", back)
	}

	// The code is worth nothing without the PKCE verifier.
	if _, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
		t.Fatal("a code was exchanged with the wrong PKCE verifier")
	}
	back = signIn(conf, "bob")
	tok, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := rp.Verifier(&oidc.Config{ClientID: p.ClientID()}).Verify(ctx, raw)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Groups []string `json:"groups"`
	}
	if err := idt.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if idt.Subject != "bob" || idt.Nonce != "n0nce" || !slices.Contains(claims.Groups, "approvers") {
		t.Fatalf("ID token: sub %q nonce %q groups %v", idt.Subject, idt.Nonce, claims.Groups)
	}
	// A code is used once.
	if _, err := conf.Exchange(ctx, back.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
		t.Fatal("a code was exchanged twice")
	}

	// Only the registered redirect URI, only known identities.
	evil := *conf
	evil.RedirectURL = "http://evil.example/.approvals/callback"
	if resp, err := noRedirects.Get(evil.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))); err != nil || resp.StatusCode == http.StatusFound && strings.Contains(resp.Header.Get("Location"), "evil.example") {
		t.Fatalf("an unregistered redirect URI was accepted: %v %v", resp.Header.Get("Location"), err)
	}
	login := location(t)(noRedirects.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(verifier))))
	if resp, _ := noRedirects.PostForm(base+"/oidc/login", url.Values{"id": {login.Query().Get("id")}, "subject": {"mallory"}}); resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("an unknown identity signed in: %d", resp.StatusCode)
	}
}

// TestAPITokensComeFromTheSameIssuer verifies a minted API token against
// the provider's published keys, as the gateway's identity jwt does.
func TestAPITokensComeFromTheSameIssuer(t *testing.T) {
	p, _ := start(t)
	ctx := context.Background()
	tok, err := p.Token("alice", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := oidc.NewProvider(ctx, p.Issuer())
	if err != nil {
		t.Fatal(err)
	}
	idt, err := rp.Verifier(&oidc.Config{SkipClientIDCheck: true}).Verify(ctx, tok)
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		Groups []string `json:"groups"`
	}
	_ = idt.Claims(&claims)
	if idt.Subject != "alice" || idt.Issuer != p.Issuer() || !slices.Equal(claims.Groups, []string{"it-ops"}) {
		t.Fatalf("API token: %+v %v", idt, claims.Groups)
	}
	if _, err := p.Token("mallory", time.Hour); err == nil {
		t.Fatal("a token for an unknown identity")
	}
}
