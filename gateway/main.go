// Command gateway is Caddy with its standard modules and the approval
// gateway, plus the subcommands token and demo.
package main

import (
	caddycmd "github.com/caddyserver/caddy/v2/cmd"

	_ "github.com/approval-gateway/gateway/module"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

func main() {
	caddycmd.Main()
}
