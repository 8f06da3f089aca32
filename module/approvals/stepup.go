package approvals

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
)

// Step-up for approvers (RFC 9470): a decision's approver_auth says how
// recently and how an approver must have authenticated. An approve or
// reject whose token falls short is 401 with a WWW-Authenticate challenge
// naming what is asked (max_age, acr_values), and changes nothing; the
// approval keeps the authentication it was given with.

// CodeInsufficientAuthentication is RFC 9470's error code.
const CodeInsufficientAuthentication = "insufficient_user_authentication"

// shownAuth is the authentication a token states: auth_time, acr, amr.
type shownAuth struct {
	authTime *time.Time
	acr      string
	amr      []string
}

// authOf reads the authentication claims of who's token.
func authOf(who *identity.Identity) shownAuth {
	var a shownAuth
	switch t := who.Claims["auth_time"].(type) {
	case float64:
		at := time.Unix(int64(t), 0).UTC()
		a.authTime = &at
	case json.Number:
		if n, err := t.Int64(); err == nil {
			at := time.Unix(n, 0).UTC()
			a.authTime = &at
		}
	}
	a.acr, _ = who.Claims["acr"].(string)
	switch v := who.Claims["amr"].(type) {
	case []any:
		for _, x := range v {
			if s, ok := x.(string); ok {
				a.amr = append(a.amr, s)
			}
		}
	case []string:
		a.amr = v
	}
	return a
}

// stepUp checks the authentication shown against rec's approver_auth at
// now: nil when it meets it (or none is asked), else the challenge.
func stepUp(rec *record.Record, shown shownAuth, now time.Time) error {
	a := rec.ApproverAuth
	if a == nil {
		return nil
	}
	var short []string
	if maxAge := time.Duration(a.MaxAge); maxAge > 0 {
		switch {
		case shown.authTime == nil:
			short = append(short, "your token does not say when you authenticated (auth_time)")
		case now.Sub(*shown.authTime) > maxAge:
			short = append(short, fmt.Sprintf("you authenticated %s ago, and this request asks for an authentication within %s",
				now.Sub(*shown.authTime).Round(time.Second), maxAge))
		}
	}
	if len(a.ACRValues) > 0 && !slices.Contains(a.ACRValues, shown.acr) {
		short = append(short, fmt.Sprintf("your authentication's class (acr) is %s, not one of %s", orNone(shown.acr), strings.Join(a.ACRValues, ", ")))
	}
	for _, m := range a.AMR {
		if !slices.Contains(shown.amr, m) {
			short = append(short, fmt.Sprintf("your authentication's methods (amr) do not include %s", m))
		}
	}
	if len(short) == 0 {
		return nil
	}
	e := fail(http.StatusUnauthorized, CodeInsufficientAuthentication, "authenticate again to decide on this request: "+strings.Join(short, "; "))
	if a.MaxAge > 0 {
		e = e.with("max_age", int64(time.Duration(a.MaxAge)/time.Second))
	}
	if len(a.ACRValues) > 0 {
		e = e.with("acr_values", strings.Join(a.ACRValues, " "))
	}
	return e
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// challenge is the WWW-Authenticate value of an insufficient
// authentication (RFC 9470 section 3).
func challenge(e *apiError) string {
	quoted := func(s string) string { return strings.NewReplacer(`\`, `'`, `"`, `'`).Replace(s) }
	c := fmt.Sprintf(`Bearer error="%s", error_description="%s"`, CodeInsufficientAuthentication, quoted(e.message))
	if v, ok := e.extra["max_age"]; ok {
		c += fmt.Sprintf(", max_age=%d", v)
	}
	if v, ok := e.extra["acr_values"]; ok {
		c += fmt.Sprintf(`, acr_values="%s"`, quoted(v.(string)))
	}
	return c
}
