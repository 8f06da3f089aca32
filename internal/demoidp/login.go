package demoidp

import (
	"html/template"
	"net/http"
	"net/url"
	"strings"
)

// loginTemplate is the sign-in page: a button per demo identity stands in
// for a password.
var loginTemplate = template.Must(template.New("login").Funcs(template.FuncMap{"join": strings.Join}).Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Sign in — approval gateway demo</title>
<style>
body{font:16px/1.5 system-ui,sans-serif;max-width:36rem;margin:3rem auto;padding:0 1rem;color:#1d2330}
h1{font-size:1.4rem}p{color:#4a5366}
form{margin:0}button{display:block;width:100%;text-align:left;margin:.5rem 0;padding:.75rem 1rem;border:1px solid #c9d1e0;border-radius:.5rem;background:#fff;font:inherit;cursor:pointer}
button:hover,button:focus{border-color:#3558d6;outline:none;background:#f3f6fe}
.who{font-weight:600}.role{color:#4a5366}.groups{display:block;font-size:.85rem;color:#6b7486}
</style></head><body>
<h1>Sign in to the approval gateway demo</h1>
<p>This demo's OpenID provider has no passwords: pick who you are.
The gateway's console asked to know you{{with .Scopes}} ({{join . ", "}}){{end}}.</p>
<form method="post" action="{{.Action}}">
<input type="hidden" name="id" value="{{.ID}}">
{{range .Identities}}<button type="submit" name="subject" value="{{.Subject}}" data-subject="{{.Subject}}">
<span class="who">{{.Subject}}</span> <span class="role">— {{.Role}}</span>
<span class="groups">{{join .Groups ", "}}</span></button>
{{end}}</form>
</body></html>
`))

// loginPage shows the identities for a pending authorization request.
func (p *Provider) loginPage(w http.ResponseWriter, r *http.Request) {
	id := r.URL.Query().Get("id")
	a, err := (&storage{p}).AuthRequestByID(r.Context(), id)
	if err != nil {
		http.Error(w, "This sign-in has expired or is unknown: start again from the console.", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Frame-Options", "DENY")
	_ = loginTemplate.Execute(w, map[string]any{
		"ID": id, "Action": p.prefix + "/login", "Identities": p.identities, "Scopes": a.GetScopes(),
	})
}

// signIn completes an authorization request as the identity picked, and
// hands the browser back to the provider, which issues the code.
func (p *Provider) signIn(w http.ResponseWriter, r *http.Request) {
	id, subject := r.PostFormValue("id"), r.PostFormValue("subject")
	if _, ok := p.identity(subject); !ok {
		http.Error(w, "No such identity.", http.StatusBadRequest)
		return
	}
	p.mu.Lock()
	a, ok := p.requests[id]
	if ok && !a.done && !p.expired(a, p.now()) {
		a.subject, a.authTime, a.done = subject, p.now(), true
	} else {
		ok = false
	}
	p.mu.Unlock()
	if !ok {
		http.Error(w, "This sign-in has expired, is unknown or is already done: start again from the console.", http.StatusBadRequest)
		return
	}
	http.Redirect(w, r, p.op.AuthorizationEndpoint().Absolute(p.issuer)+"/callback?id="+url.QueryEscape(id), http.StatusFound)
}
