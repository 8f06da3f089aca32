// Package caddykit runs Caddy configurations in a test's own process: a
// test site's Caddyfile, loaded and stopped with the test. It is apart
// from testkit so that tests that do not run Caddy do not link it.
package caddykit

import (
	"fmt"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
)

// Site is the Caddyfile of a test site on a loopback port: no admin
// endpoint, no saved configuration, no HTTPS, the global options in
// global (one per line, may be empty), and body inside the site block.
func Site(port int, global, body string) string {
	if global != "" {
		global = "\t" + strings.ReplaceAll(strings.TrimSpace(global), "\n", "\n\t") + "\n"
	}
	return fmt.Sprintf("{\n\tadmin off\n\tpersist_config off\n\tauto_https off\n%s}\n\nhttp://127.0.0.1:%d {\n%s\n}\n", global, port, body)
}

// Load adapts text, runs it in this process (replacing what runs), stops
// Caddy when the test ends, and waits until the gateway at base is ready
// (unless base is empty).
func Load(t testing.TB, base, text string) {
	t.Helper()
	cfg, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(text), map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatal(err)
	}
	if err := caddy.Load(cfg, true); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	if base != "" {
		testkit.WaitHealthy(t, base+"/.approvals/healthz")
	}
}
