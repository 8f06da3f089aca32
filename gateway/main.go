// Command gateway is Caddy with its standard modules and the approval
// gateway, plus the subcommands approvals, token and demo.
package main

import (
	"os"
	"path/filepath"
	"strings"

	"github.com/caddyserver/caddy/v2"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/approval-gateway/gateway/module"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddy.CustomBinaryName = binaryName(os.Args[0])
	caddy.CustomLongDescription = longDescription
	caddycmd.Main()
}

// binaryName is the program's name as it was called, so that help and
// shell completion name it ("gateway approvals list", not "caddy …").
func binaryName(arg0 string) string {
	name := strings.TrimSuffix(filepath.Base(arg0), ".exe")
	if name == "" || name == "." || name == string(filepath.Separator) {
		return "gateway"
	}
	return name
}

const longDescription = `The approval gateway: Caddy with multi-admin approval ("four eyes") in
front of any admin API. A mutating call is authenticated, judged by Rego
policies and, when a policy says so, parked until a different identity
from the right group approves; the requester then completes it.

	- 'demo' runs the gateway with embedded etcd in front of an example
	  admin API, with the web console and its own sign-in.
	- 'run --config Caddyfile' runs a configuration (Caddy's own commands
	  all work: adapt, validate, reload, fmt, ...).
	- 'approvals' lists, decides, awaits and completes requests.
	- 'completion bash|zsh|fish|powershell' prints shell completion.

Documentation: README.md and DESIGN.md in the repository.
`
