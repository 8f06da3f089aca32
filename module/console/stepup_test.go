package console_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/chromedp/chromedp"
)

// TestConsoleStepUpInABrowser: the policy asks approvers for an
// authentication within 15 minutes (approver_auth max_age, RFC 9470).
// Bob's sign-in did not say when he authenticated, so his approval in the
// console is answered with the challenge; the console sends him through
// the provider again with max_age=900 and, back with a token that says
// it, carries out his approval with his notes.
func TestConsoleStepUpInABrowser(t *testing.T) {
	c := newConsoleHarnessWith(t, testkit.WritePolicy(t, `package approval

decision := {"action": "require_approval", "policy": "devices", "resource": input.request.path,
	"approvers": [{"group": "approvers", "required": 1}], "approver_auth": {"max_age": "15m"}}
`))
	bob := c.person("bob")
	testkit.WaitFor(t, func() bool { // his sign-in noted him as a member of approvers
		resp, err := c.Cli.Get(context.Background(), "/approvals/members/approvers/bob")
		return err == nil && len(resp.Kvs) == 1
	})
	token := c.idp.idToken(t, "alice", consoleClient, consoleSecret, c.GW.URL+"/.approvals/callback")
	id := c.Expect(c.Do("POST", "/devices/2/wipe", token, `{}`, "Approval-Justification", "INC-4711 phone stolen",
		"Content-Type", "application/json"), http.StatusAccepted, "").Str("id")

	bob.Run(chromedp.Navigate(c.GW.URL+"/.approvals/requests/"+id), chromedp.WaitVisible(`textarea[name=notes]`))
	// Notes longer than a cookie holds: the decision waits in the store.
	notes := "confirmed after signing in again " + strings.Repeat("checked with the owner; ", 150)
	bob.Run(chromedp.SetValue(`form[action$="/approve"] textarea[name=notes]`, notes),
		chromedp.Click(`button[value=approve]`), chromedp.WaitVisible(`a.button.primary`))
	if got := bob.Text(`main`); !strings.Contains(got, "Sign in again to approve") || !strings.Contains(got, "Your token does not say when you authenticated (auth_time).") {
		t.Fatalf("the step-up page: %s", got)
	}
	bob.Screenshot(c.shots, "step-up.png")
	bob.Run(chromedp.Click(`a.button.primary`))
	// The provider may ask to sign in or to consent again; then back.
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		loc := bob.Location()
		if strings.HasPrefix(loc, c.GW.URL+"/.approvals/requests/"+id) && strings.Contains(loc, "done=") {
			break
		}
		var logins, buttons int
		bob.Run(chromedp.Evaluate(`document.querySelectorAll('input[name=login]').length`, &logins),
			chromedp.Evaluate(`document.querySelectorAll('button[type=submit], button[autofocus]').length`, &buttons))
		switch {
		case strings.HasPrefix(loc, c.idp.Issuer) && logins > 0:
			_ = bob.Try(chromedp.SendKeys(`input[name=login]`, "bob"), chromedp.SendKeys(`input[name=password]`, "any"),
				chromedp.Submit(`input[name=login]`))
		case strings.HasPrefix(loc, c.idp.Issuer) && buttons > 0:
			_ = bob.Try(chromedp.Click(`button[type=submit], button[autofocus]`, chromedp.NodeVisible))
		}
		time.Sleep(200 * time.Millisecond)
	}
	bob.Run(chromedp.WaitVisible(`.msg.ok`))
	if logins := c.Logs.FilterMessage("console login").Len(); logins != 2 {
		t.Errorf("bob signed in %d times; want 2: the approval goes through the provider again", logins)
	}
	rec := c.Record(token, id) // alice, the requester
	if strings.Contains(rec.Raw, `"warnings"`) {
		t.Errorf("bob signed in to the console before the park, yet the park warns: %s", rec.Raw)
	}
	appr := rec.Body["approvers"].([]any)[0].(map[string]any)["approvals"].([]any)
	if rec.Str("status") != "approved" || len(appr) != 1 {
		t.Fatalf("after the step-up: %s", rec.Raw)
	}
	a := appr[0].(map[string]any)
	at, err := time.Parse(time.RFC3339, a["auth_time"].(string))
	if a["subject"] != "bob" || a["notes"] != notes || err != nil || time.Since(at) > time.Minute {
		t.Fatalf("the approval %v", a)
	}
	bob.Screenshot(c.shots, "step-up-approved.png")
}
