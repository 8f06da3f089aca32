package console_test

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/browserkit"
	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/approval-gateway/gateway/module/console"
	"github.com/approval-gateway/gateway/module/identity"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"go.uber.org/zap"
)

const (
	consoleClient = "gateway"
	consoleSecret = "gateway-secret"
)

// consoleHarness is the gateway with the console, a real OpenID provider,
// and a browser.
type consoleHarness struct {
	*approvalstest.Harness
	idp      *oidcProvider
	ver      *identity.Verifier
	chromium string
	shots    string
}

func newConsoleHarness(t *testing.T) *consoleHarness {
	t.Helper()
	return newConsoleHarnessWith(t, "")
}

// newConsoleHarnessWith is newConsoleHarness with the policies in
// policyDir.
func newConsoleHarnessWith(t *testing.T, policyDir string) *consoleHarness {
	t.Helper()
	chromium := browserkit.Chromium(t)
	idp := newOIDCProvider(t)
	ver, err := identity.New(identity.Options{JWKSURL: idp.Issuer + "/jwks", Issuer: idp.Issuer, Audience: consoleClient})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ver.Close)
	h := approvalstest.New(t, policyDir, func(o *approvalstest.Options) {
		o.Identity = ver
		o.Clock = time.Now // the browser's relative times need the real clock
	})
	c := &consoleHarness{Harness: h, idp: idp, chromium: chromium, ver: ver}
	withConsole(t, h.Svc, h.Opts, c.options())
	idp.start(t, map[string][]string{"alice": {"it-ops", "approvers"}, "bob": {"approvers"}},
		h.GW.URL+"/.approvals/callback")

	c.shots = browserkit.ScreenshotDir(t)
	return c
}

// options are the console's login settings against the test provider.
func (c *consoleHarness) options() console.Options {
	return console.Options{Issuer: c.idp.Issuer, ClientID: consoleClient, ClientSecret: consoleSecret, Scopes: []string{}, Identify: c.ver.Identify}
}

// withConsole serves the console on svc, a gateway built from o.
func withConsole(t *testing.T, svc *approvals.Service, o approvalstest.Options, co console.Options) {
	t.Helper()
	c, err := console.New(console.Deps{Flow: svc, Store: o.Store, Identity: o.Identity, Prefix: svc.Prefix, Clock: o.Clock, Logger: o.Logger}, co)
	if err != nil {
		t.Fatal(err)
	}
	svc.SetPages(c)
}

// person starts a browser of its own (own profile, own cookies) and logs in
// through the provider's pages.
func (c *consoleHarness) person(user string) *browserkit.Browser {
	c.T.Helper()
	b := browserkit.Start(c.T, c.chromium)
	b.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`a.button.primary`))
	b.Run(chromedp.Click(`a.button.primary`), chromedp.WaitVisible(`input[name=login]`))
	b.Run(chromedp.SendKeys(`input[name=login]`, user), chromedp.SendKeys(`input[name=password]`, "any"),
		chromedp.Submit(`input[name=login]`))
	// Consent, the first time.
	var onConsole bool
	deadline := time.Now().Add(20 * time.Second)
	for !onConsole && time.Now().Before(deadline) {
		if strings.HasPrefix(b.Location(), c.GW.URL) {
			onConsole = true
			break
		}
		var n int
		b.Run(chromedp.Evaluate(`document.querySelectorAll('button[type=submit], button[autofocus]').length`, &n))
		if n > 0 {
			_ = b.Try(chromedp.Click(`button[type=submit], button[autofocus]`, chromedp.NodeVisible))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !onConsole {
		c.T.Fatal("login did not come back to the console")
	}
	b.Run(chromedp.WaitVisible(`header .who`))
	return b
}

// TestConsoleInABrowser: the requester parks a change through the API, the
// approver sees it arrive live in Received requests and approves it with
// notes, the requester reads the notes and completes it; the backend gets
// the call once. Self-approval is refused in the page, a form without its
// CSRF token is refused, and a script in a justification is shown as text.
func TestConsoleInABrowser(t *testing.T) {
	c := newConsoleHarness(t)
	bob := c.person("bob")
	bob.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`main h1`))
	if got := bob.Text(`main`); !strings.Contains(got, "No requests here") {
		t.Fatalf("received list not empty: %s", got)
	}

	// Alice parks a change through the API, with a token from the same
	// provider.
	token := c.idp.idToken(t, "alice", consoleClient, consoleSecret, c.GW.URL+"/.approvals/callback")
	xss := `<script>document.title="owned"</script> laptop stolen`
	res := c.Expect(c.Do("POST", "/devices/2/wipe", token, `{"reason":"stolen","items":[1,2,3]}`,
		"Approval-Justification", xss, "Content-Type", "application/json"), http.StatusAccepted, "")
	id := res.Str("id")

	// Bob sees it arrive without reloading.
	bob.Run(chromedp.WaitVisible(`a[href="/.approvals/requests/` + id + `"]`))
	if got := bob.Text(`#waiting`); strings.TrimSpace(got) != "1" {
		t.Fatalf("waiting count %q", got)
	}
	bob.Screenshot(c.shots, "received-requests.png")

	// Alice, also an approver, cannot approve her own request.
	alice := c.person("alice")
	alice.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`button[value=approve]`),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.err`))
	if got := alice.Text(`.msg.err`); !strings.Contains(got, "can't approve or reject your own request") {
		t.Fatalf("self-approval message %q", got)
	}

	// Bob approves with notes; the justification's script is text.
	bob.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`textarea[name=notes]`))
	var title string
	bob.Run(chromedp.Title(&title))
	if title == "owned" || !strings.Contains(bob.Text(`main .card dl`), `<script>document.title="owned"</script>`) {
		t.Fatalf("the justification was not shown as text (title %q)", title)
	}
	if body := bob.Text(`main pre`); !strings.Contains(body, "\"items\": [\n    1,") {
		t.Fatalf("body not pretty-printed: %s", body)
	}
	bob.Screenshot(c.shots, "request-page.png")
	bob.Run(chromedp.SendKeys(`form[action$="/approve"] textarea[name=notes]`, "confirmed with the owner"),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.ok`))

	// Alice sees the notes arrive live, and completes.
	alice.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`main`))
	if got := alice.Text(`main`); !strings.Contains(got, "confirmed with the owner") {
		t.Fatalf("the requester does not see the notes: %s", got)
	}
	alice.Run(chromedp.WaitVisible(`form[action$="/complete"] button`), chromedp.Click(`form[action$="/complete"] button`),
		chromedp.WaitVisible(`.msg.ok`))
	if got := alice.Text(`main`); !strings.Contains(got, "Backend's answer") || !strings.Contains(got, "completed") {
		t.Fatalf("after complete: %s", got)
	}
	alice.Screenshot(c.shots, "completed.png")
	calls := c.Backend.Mutating()
	if len(calls) != 1 || calls[0].Header.Get("Idempotency-Key") != id {
		t.Fatalf("backend calls: %+v", calls)
	}

	// A form post without the CSRF token is refused, even with the session.
	var cookies []*network.Cookie
	bob.Run(chromedp.ActionFunc(func(ctx context.Context) (err error) {
		cookies, err = network.GetCookies().WithURLs([]string{c.GW.URL + "/.approvals/"}).Do(ctx)
		return err
	}))
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(c.GW.URL + "/.approvals/")
	for _, ck := range cookies {
		jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: ck.Path}})
	}
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", c.GW.URL+"/.approvals/requests/"+id+"/cancel", strings.NewReader("notes=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.GW.URL)
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a post without the CSRF token answered %d", resp.StatusCode)
	}

	// No cookie value and no token is ever rendered.
	var html string
	bob.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`main`), chromedp.OuterHTML("html", &html))
	for _, ck := range cookies {
		if len(ck.Value) > 8 && strings.Contains(html, ck.Value) {
			t.Fatalf("the page renders the %s cookie", ck.Name)
		}
	}
	if strings.Contains(html, token) {
		t.Fatal("the page renders a token")
	}

	// A copy of the session cookie works, on this gateway and on another
	// one sharing the store, until the session signs out.
	sibling := c.Sibling(zap.NewNop())
	withConsole(t, sibling, c.Opts, c.options())
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sibling.ServeHTTP(w, r, approvalstest.ProxyTo(c.Backend.URL))
	}))
	t.Cleanup(other.Close)
	signedIn := func(base string) bool {
		t.Helper()
		req, _ := http.NewRequest("GET", base+"/.approvals/requests?view=received", nil)
		for _, ck := range cookies {
			req.AddCookie(&http.Cookie{Name: ck.Name, Value: ck.Value})
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		page, _ := io.ReadAll(resp.Body)
		return resp.StatusCode == http.StatusOK && strings.Contains(string(page), "Received requests") && !strings.Contains(string(page), "Sign in")
	}
	if !signedIn(c.GW.URL) || !signedIn(other.URL) {
		t.Fatal("the copied session cookie does not work before signing out")
	}

	// Signing out ends the session: the console asks to sign in again,
	// and the copied cookie stops working at once, on every gateway.
	bob.Run(chromedp.Click(`header form button`), chromedp.WaitVisible(`a.button.primary`))
	bob.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`a.button.primary`))
	if got := bob.Text(`main`); !strings.Contains(got, "Sign in") {
		t.Fatalf("after signing out: %s", got)
	}
	if signedIn(c.GW.URL) || signedIn(other.URL) {
		t.Fatal("a copy of the session cookie still works after signing out")
	}
}
