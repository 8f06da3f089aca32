package walkthrough

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/browserkit"
	"github.com/chromedp/chromedp"
)

// demoConsole is the demo's console as a newcomer opens it.
const demoConsole = "http://localhost:8080/.approvals/"

// signIn opens the demo's console in a browser of its own and signs in as
// subject on the demo provider's page: the authorization code flow with
// PKCE, the identity picked in place of a password.
func signIn(t *testing.T, chromium, subject string) *browserkit.Browser {
	t.Helper()
	b := browserkit.Start(t, chromium)
	b.Run(chromedp.Navigate(demoConsole), chromedp.WaitVisible(`a.button.primary`))
	b.Run(chromedp.Click(`a.button.primary`), chromedp.WaitVisible(`button[value=`+subject+`]`))
	if loc := b.Location(); !strings.HasPrefix(loc, "http://localhost:8080/oidc/login?") {
		t.Fatalf("signing in went to %s, not the demo provider's page", loc)
	}
	b.Run(chromedp.Click(`button[value=`+subject+`]`), chromedp.WaitVisible(`header .who`))
	if who := b.Text(`header .who`); !strings.Contains(who, subject) {
		t.Fatalf("signed in as %q, want %s", who, subject)
	}
	return b
}

// park has alice ask for something through the demo's API.
func park(t *testing.T, token, method, path, justification string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(method, "http://localhost:8080"+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Approval-Justification", justification)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var rec map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&rec)
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("%s %s: %d %v", method, path, resp.StatusCode, rec)
	}
	return rec
}

// consoleWalkThrough: bob signs in to the demo's console, sees alice's
// request in Received requests and approves it (dave too, after hours);
// alice signs in and completes it, and reads the backend's answer.
func consoleWalkThrough(t *testing.T, tokens map[string]string) {
	chromium := browserkit.Chromium(t)
	rec := park(t, tokens["ALICE"], "POST", "/devices/2/retire", "PHONE-7 handed back to its owner")
	id, _ := rec["id"].(string)
	afterHours := strings.Contains(mustJSON(rec["approvers"]), "on-call-approvers")

	bob := signIn(t, chromium, "bob")
	bob.Run(chromedp.Navigate(demoConsole+"requests?view=received"), chromedp.WaitVisible(`a[href="/.approvals/requests/`+id+`"]`))
	if got := bob.Text(`main`); !strings.Contains(got, "/devices/2/retire") {
		t.Fatalf("Received requests:\n%s", got)
	}
	bob.Screenshot(browserkit.ScreenshotDir(t), "demo-received-requests.png")
	bob.Run(chromedp.Click(`a[href="/.approvals/requests/`+id+`"]`), chromedp.WaitVisible(`textarea[name=notes]`))
	if got := bob.Text(`main`); !strings.Contains(got, "PHONE-7 handed back to its owner") {
		t.Fatalf("the request page does not show the justification:\n%s", got)
	}
	bob.Run(chromedp.SendKeys(`form[action$="/approve"] textarea[name=notes]`, "owner confirmed by phone"),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.ok`))
	if afterHours {
		dave := signIn(t, chromium, "dave")
		dave.Run(chromedp.Navigate(demoConsole+"requests/"+id), chromedp.WaitVisible(`button[value=approve]`),
			chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`.msg.ok`))
	}

	alice := signIn(t, chromium, "alice")
	alice.Run(chromedp.Navigate(demoConsole+"requests/"+id), chromedp.WaitVisible(`form[action$="/complete"] button`))
	if got := alice.Text(`main`); !strings.Contains(got, "owner confirmed by phone") {
		t.Fatalf("alice does not see bob's notes:\n%s", got)
	}
	alice.Run(chromedp.Click(`form[action$="/complete"] button`), chromedp.WaitVisible(`.msg.ok`))
	if got := alice.Text(`main`); !strings.Contains(got, "Backend's answer") || !strings.Contains(got, "retired") {
		t.Fatalf("after complete:\n%s", got)
	}
	alice.Screenshot(browserkit.ScreenshotDir(t), "demo-completed.png")
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}
