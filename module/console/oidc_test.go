package console_test

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
)

// oidcProvider is a real OpenID provider (the oidc-provider package) on
// loopback, run by testdata/oidc/provider.mjs.
type oidcProvider struct {
	Issuer string
	port   int
}

// newOIDCProvider picks the provider's address; start runs it once the
// redirect URIs are known.
func newOIDCProvider(t *testing.T) *oidcProvider {
	t.Helper()
	testkit.Tool(t, "node")
	port := testkit.Port(t)
	return &oidcProvider{Issuer: fmt.Sprintf("http://127.0.0.1:%d", port), port: port}
}

func (p *oidcProvider) start(t *testing.T, accounts map[string][]string, redirects ...string) {
	t.Helper()
	acc, _ := json.Marshal(accounts)
	testkit.NodeApp(t, "testdata/oidc", "oidc-provider",
		[]string{fmt.Sprintf("PORT=%d", p.port), "ACCOUNTS=" + string(acc), "REDIRECT_URIS=" + strings.Join(redirects, " ")}, "provider.mjs")
}

var (
	formAction  = regexp.MustCompile(`<form[^>]*action="([^"]+)"`)
	hiddenInput = regexp.MustCompile(`<input type="hidden" name="([^"]+)" value="([^"]*)"`)
)

// idToken logs user in at the provider as a program would (its own login
// and consent forms, authorization code with PKCE) and returns the ID token.
func (p *oidcProvider) idToken(t *testing.T, user, clientID, secret, redirect string) string {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if strings.HasPrefix(r.URL.String(), redirect) {
			return http.ErrUseLastResponse
		}
		return nil
	}}
	verifier := "verifier-" + strings.Repeat("x", 43)
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{"client_id": {clientID}, "redirect_uri": {redirect}, "response_type": {"code"}, "scope": {"openid"},
		"state": {"s"}, "nonce": {"n"}, "code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"}}
	resp, err := client.Get(p.Issuer + "/auth?" + q.Encode())
	for step := 0; err == nil && resp.StatusCode == http.StatusOK && step < 4; step++ {
		page, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		m := formAction.FindSubmatch(page)
		if m == nil {
			t.Fatalf("no form on the provider's page: %s", page)
		}
		form := url.Values{"login": {user}, "password": {"any"}}
		for _, h := range hiddenInput.FindAllSubmatch(page, -1) {
			form.Set(string(h[1]), html.UnescapeString(string(h[2])))
		}
		action, perr := resp.Request.URL.Parse(html.UnescapeString(string(m[1])))
		if perr != nil {
			t.Fatal(perr)
		}
		resp, err = client.PostForm(action.String(), form)
	}
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || loc.Query().Get("code") == "" {
		t.Fatalf("no code in the redirect (%d): %v", resp.StatusCode, resp.Header)
	}
	req, _ := http.NewRequest("POST", p.Issuer+"/token", strings.NewReader(url.Values{"grant_type": {"authorization_code"},
		"code": {loc.Query().Get("code")}, "redirect_uri": {redirect}, "code_verifier": {verifier}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err = client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tok struct {
		IDToken string `json:"id_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tok); err != nil || tok.IDToken == "" {
		t.Fatalf("token endpoint: %d %v", resp.StatusCode, err)
	}
	return tok.IDToken
}
