package approvalgateway

import (
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
)

// FuzzUnmarshalCaddyfile feeds arbitrary directive blocks to the parser: it
// must return a config or an error, never panic.
func FuzzUnmarshalCaddyfile(f *testing.F) {
	for _, s := range []string{
		"approval_gateway {\n\tpolicies ./p\n}",
		"approval_gateway {\n\tidentity jwt {\n\t\tsecret x\n\t\tkey_file a\n\t}\n\tstore etcd {\n\t\tendpoints a b\n\t}\n}",
		"approval_gateway {\n\tstore embedded {\n\t\tlisten\n\t}\n}",
		"approval_gateway {\n\tnotify webhook u {\n\t\tevents\n\t}\n\treplay_credentials sealed\n}",
		"approval_gateway {\n\tidentity placeholder {\n}",
		"approval_gateway x y {",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		// Caddy's own lexer refuses some inputs before any directive sees
		// them (NewTestDispenser would exit the process on those).
		tokens, err := caddyfile.Tokenize([]byte(text), "Caddyfile")
		if err != nil {
			return
		}
		var h Handler
		_ = h.UnmarshalCaddyfile(caddyfile.NewDispenser(tokens))
	})
}
