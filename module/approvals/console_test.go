package approvals

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	*harness
	idp      *oidcProvider
	chromium string
	shots    string
}

func newConsoleHarness(t *testing.T) *consoleHarness {
	t.Helper()
	chromium := needTool(t, "chromium")
	idp := newOIDCProvider(t)
	h := newHarness(t, "", func(o *Options) {
		ver, err := identity.New(identity.Options{JWKSURL: idp.Issuer + "/jwks", Issuer: idp.Issuer, Audience: consoleClient})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(ver.Close)
		o.Identity = ver
		o.Clock = time.Now // the browser's relative times need the real clock
		o.Console = &ConsoleOptions{Issuer: idp.Issuer, ClientID: consoleClient, ClientSecret: consoleSecret,
			Scopes: []string{}, Identify: ver.Identify}
	})
	idp.start(t, map[string][]string{"alice": {"it-ops", "approvers"}, "bob": {"approvers"}},
		h.gw.URL+"/.approvals/callback")

	// Screenshots go to the test's output directory (go test -artifacts
	// -outputdir DIR), or to SCREENSHOT_DIR.
	shots := os.Getenv("SCREENSHOT_DIR")
	if shots == "" {
		shots = t.ArtifactDir()
	}
	return &consoleHarness{harness: h, idp: idp, chromium: chromium, shots: shots}
}

// person starts a browser of its own (own profile, own cookies) and logs in
// through the provider's pages.
func (c *consoleHarness) person(user string) context.Context {
	c.t.Helper()
	// Chromium's helper processes may still write to the profile after the
	// browser exits: remove it best-effort, not as a t.TempDir.
	profile, err := os.MkdirTemp("", "approval-console-chromium-")
	if err != nil {
		c.t.Fatal(err)
	}
	c.t.Cleanup(func() {
		for range 10 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(c.chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(profile))
	c.t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	c.t.Cleanup(cancelTab)
	// The first Run starts the browser; its context must outlive the test's
	// steps, whose timeouts would otherwise close it.
	if err := chromedp.Run(ctx); err != nil {
		c.t.Fatalf("starting chromium: %v", err)
	}
	c.run(ctx, chromedp.Navigate(c.gw.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`a.button.primary`))
	c.run(ctx, chromedp.Click(`a.button.primary`), chromedp.WaitVisible(`input[name=login]`))
	c.run(ctx, chromedp.SendKeys(`input[name=login]`, user), chromedp.SendKeys(`input[name=password]`, "any"),
		chromedp.Submit(`input[name=login]`))
	// Consent, the first time.
	var onConsole bool
	deadline := time.Now().Add(20 * time.Second)
	for !onConsole && time.Now().Before(deadline) {
		var loc string
		c.run(ctx, chromedp.Location(&loc))
		if strings.HasPrefix(loc, c.gw.URL) {
			onConsole = true
			break
		}
		var n int
		c.run(ctx, chromedp.Evaluate(`document.querySelectorAll('button[type=submit], button[autofocus]').length`, &n))
		if n > 0 {
			_ = chromedp.Run(ctx, chromedp.Click(`button[type=submit], button[autofocus]`, chromedp.NodeVisible))
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !onConsole {
		c.t.Fatal("login did not come back to the console")
	}
	c.run(ctx, chromedp.WaitVisible(`header .who`))
	return ctx
}

func (c *consoleHarness) run(ctx context.Context, actions ...chromedp.Action) {
	c.t.Helper()
	tctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		var loc, page string
		dctx, dcancel := context.WithTimeout(ctx, 5*time.Second)
		defer dcancel()
		_ = chromedp.Run(dctx, chromedp.Location(&loc), chromedp.OuterHTML("html", &page))
		if len(page) > 3000 {
			page = page[:3000]
		}
		c.t.Fatalf("%v\nat %s:\n%s", err, loc, page)
	}
}

func (c *consoleHarness) text(ctx context.Context, sel string) string {
	c.t.Helper()
	var s string
	c.run(ctx, chromedp.Text(sel, &s, chromedp.NodeVisible))
	return s
}

func (c *consoleHarness) screenshot(ctx context.Context, name string) {
	c.t.Helper()
	var png []byte
	c.run(ctx, chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(c.shots, name), png, 0o644); err != nil {
		c.t.Fatal(err)
	}
}

// TestConsoleInABrowser: the requester parks a change through the API, the
// approver sees it arrive live in Received requests and approves it with
// notes, the requester reads the notes and completes it; the backend gets
// the call once. Self-approval is refused in the page, a form without its
// CSRF token is refused, and a script in a justification is shown as text.
func TestConsoleInABrowser(t *testing.T) {
	c := newConsoleHarness(t)
	bob := c.person("bob")
	c.run(bob, chromedp.Navigate(c.gw.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`main h1`))
	if got := c.text(bob, `main`); !strings.Contains(got, "No requests here") {
		t.Fatalf("received list not empty: %s", got)
	}

	// Alice parks a change through the API, with a token from the same
	// provider.
	token := c.idp.idToken(t, "alice", consoleClient, consoleSecret, c.gw.URL+"/.approvals/callback")
	xss := `<script>document.title="owned"</script> laptop stolen`
	res := c.expect(c.do("POST", "/devices/2/wipe", token, `{"reason":"stolen","items":[1,2,3]}`,
		"Approval-Justification", xss, "Content-Type", "application/json"), http.StatusAccepted, "")
	id := res.str("id")

	// Bob sees it arrive without reloading.
	c.run(bob, chromedp.WaitVisible(`a[href="/.approvals/requests/`+id+`"]`))
	if got := c.text(bob, `#waiting`); strings.TrimSpace(got) != "1" {
		t.Fatalf("waiting count %q", got)
	}
	c.screenshot(bob, "received-requests.png")

	// Alice, also an approver, cannot approve her own request.
	alice := c.person("alice")
	c.run(alice, chromedp.Navigate(c.gw.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`button[value=approve]`),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.err`))
	if got := c.text(alice, `.msg.err`); !strings.Contains(got, "can't approve or reject your own request") {
		t.Fatalf("self-approval message %q", got)
	}

	// Bob approves with notes; the justification's script is text.
	c.run(bob, chromedp.Navigate(c.gw.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`textarea[name=notes]`))
	var title string
	c.run(bob, chromedp.Title(&title))
	if title == "owned" || !strings.Contains(c.text(bob, `main .card dl`), `<script>document.title="owned"</script>`) {
		t.Fatalf("the justification was not shown as text (title %q)", title)
	}
	if body := c.text(bob, `main pre`); !strings.Contains(body, "\"items\": [\n    1,") {
		t.Fatalf("body not pretty-printed: %s", body)
	}
	c.screenshot(bob, "request-page.png")
	c.run(bob, chromedp.SendKeys(`form[action$="/approve"] textarea[name=notes]`, "confirmed with the owner"),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.ok`))

	// Alice sees the notes arrive live, and completes.
	c.run(alice, chromedp.Navigate(c.gw.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`main`))
	if got := c.text(alice, `main`); !strings.Contains(got, "confirmed with the owner") {
		t.Fatalf("the requester does not see the notes: %s", got)
	}
	c.run(alice, chromedp.WaitVisible(`form[action$="/complete"] button`), chromedp.Click(`form[action$="/complete"] button`),
		chromedp.WaitVisible(`.msg.ok`))
	if got := c.text(alice, `main`); !strings.Contains(got, "Backend's answer") || !strings.Contains(got, "completed") {
		t.Fatalf("after complete: %s", got)
	}
	c.screenshot(alice, "completed.png")
	calls := c.backend.mutating()
	if len(calls) != 1 || calls[0].Header.Get("Idempotency-Key") != id {
		t.Fatalf("backend calls: %+v", calls)
	}

	// A form post without the CSRF token is refused, even with the session.
	var cookies []*network.Cookie
	c.run(bob, chromedp.ActionFunc(func(ctx context.Context) (err error) {
		cookies, err = network.GetCookies().WithURLs([]string{c.gw.URL + "/.approvals/"}).Do(ctx)
		return err
	}))
	jar, _ := cookiejar.New(nil)
	u, _ := url.Parse(c.gw.URL + "/.approvals/")
	for _, ck := range cookies {
		jar.SetCookies(u, []*http.Cookie{{Name: ck.Name, Value: ck.Value, Path: ck.Path}})
	}
	client := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	req, _ := http.NewRequest("POST", c.gw.URL+"/.approvals/requests/"+id+"/cancel", strings.NewReader("notes=x"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", c.gw.URL)
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
	c.run(bob, chromedp.Navigate(c.gw.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`main`), chromedp.OuterHTML("html", &html))
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
	sibling := c.sibling(zap.NewNop())
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_ = sibling.ServeHTTP(w, r, proxyTo(c.backend.URL))
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
	if !signedIn(c.gw.URL) || !signedIn(other.URL) {
		t.Fatal("the copied session cookie does not work before signing out")
	}

	// Signing out ends the session: the console asks to sign in again,
	// and the copied cookie stops working at once, on every gateway.
	c.run(bob, chromedp.Click(`header form button`), chromedp.WaitVisible(`a.button.primary`))
	c.run(bob, chromedp.Navigate(c.gw.URL+"/.approvals/requests?view=received"), chromedp.WaitVisible(`a.button.primary`))
	if got := c.text(bob, `main`); !strings.Contains(got, "Sign in") {
		t.Fatalf("after signing out: %s", got)
	}
	if signedIn(c.gw.URL) || signedIn(other.URL) {
		t.Fatal("a copy of the session cookie still works after signing out")
	}
}
