package main

import (
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// TestDemoSiteAnswersOnEveryHostName: the demo's site has no host matcher
// (any host name reaches it); --listen chooses the port and, when it names
// a host, the interface, and the host the printed commands use.
func TestDemoSiteAnswersOnEveryHostName(t *testing.T) {
	for listen, want := range map[string]struct{ base, listen string }{
		":8080":          {"http://localhost:8080", `":8080"`},
		"0.0.0.0:9000":   {"http://localhost:9000", `":9000"`},
		"127.0.0.1:9001": {"http://127.0.0.1:9001", `"127.0.0.1:9001"`},
		"[::1]:9002":     {"http://[::1]:9002", `"[::1]:9002"`},
	} {
		site, err := parseListen(listen)
		if err != nil {
			t.Fatal(err)
		}
		if site.base() != want.base {
			t.Errorf("%s: base %s, want %s", listen, site.base(), want.base)
		}
		cfg := demoConfig{Site: site, Data: "/tmp/d", Policies: "/tmp/p", API: "127.0.0.1:1", IdP: "127.0.0.1:2",
			Issuer: site.base() + "/oidc", KeysPath: "/oidc/keys", ClientID: "c", LogFile: "/tmp/d/gateway.log"}
		js, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg.caddyfile()), map[string]any{"filename": "demo"})
		if err != nil {
			t.Fatalf("%s: %v\n%s", listen, err, cfg.caddyfile())
		}
		got := string(js)
		if !strings.Contains(got, `"listen":[`+want.listen+`]`) || strings.Contains(got, `"host":[`) {
			t.Errorf("%s: the site listens or matches hosts wrongly:\n%s", listen, got)
		}
		if !strings.Contains(got, `"writer":{"filename":"/tmp/d/gateway.log","output":"file"}`) {
			t.Errorf("%s: the logs do not go to the file:\n%s", listen, got)
		}
		if !strings.Contains(demoFirstSteps(site), strings.TrimPrefix(want.base, "http://")+"/devices") {
			t.Errorf("%s: the printed steps are not for the site:\n%s", listen, demoFirstSteps(site))
		}
	}
	if _, err := parseListen("8080"); err == nil {
		t.Error("a port without a colon was taken as an address")
	}
}

func TestDemoText(t *testing.T) {
	site, _ := parseListen(":8080")
	text := demoText(site, "/tmp/x", "/tmp/x/gateway.log", "/tmp/x/demo.env", map[string]string{"alice": "A", "bob": "B"})
	for _, want := range []string{"Console   http://localhost:8080/.approvals/", "Logs      /tmp/x/gateway.log", "/tmp/x/demo.env",
		"  export ALICE=A   # requester: it-ops\n", "  export BOB=B ", "Approval-Justification", "/approve", "/complete"} {
		if !strings.Contains(text, want) {
			t.Errorf("demo text lacks %q:\n%s", want, text)
		}
	}
}
