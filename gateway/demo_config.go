package main

import (
	"fmt"
	"strings"
)

// demoConfig is what the demo's Caddyfile is made of.
type demoConfig struct {
	Site                    demoSite
	Data, Policies, LogFile string
	API, IdP                string // loopback addresses
	Issuer, KeysPath        string
	ClientID                string
	Verbose                 bool
}

// caddyfile is the demo's configuration: one site on every host name at
// the port, the OpenID provider under /oidc, and the gateway with the
// console in front of the example admin API. The client secret is read
// from the environment at provision time, so it is not in the
// configuration.
func (c demoConfig) caddyfile() string {
	output := "output file " + quote(c.LogFile)
	if c.Verbose {
		output = "output stderr"
	}
	bind := ""
	if c.Site.bind != "" {
		bind = "\tbind " + c.Site.bind + "\n"
	}
	return fmt.Sprintf(`{
	admin off
	persist_config off
	auto_https off
	log {
		%s
		format json
	}
}

http://:%s {
%s	# The demo's OpenID provider: the console's sign-in, and the issuer of
	# the API tokens the demo prints.
	route /oidc/* {
		reverse_proxy %s
	}
	route {
		approval_gateway {
			store embedded %s
			identity jwt {
				jwks_url http://%s%s
				issuer %s
			}
			console {
				client_id %s
				client_secret {env.APPROVAL_DEMO_CLIENT_SECRET}
			}
			policies %s
			admin_groups approval-admins
		}
		reverse_proxy %s
	}
}
`, output, c.Site.port, bind, c.IdP, quote(c.Data), c.IdP, c.KeysPath, c.Issuer, c.ClientID, quote(c.Policies), c.API)
}

func quote(s string) string {
	if strings.ContainsAny(s, " \t\"{}#") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}
