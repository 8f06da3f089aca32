package main

import (
	"fmt"
	"strings"
)

// exportLines are the shell lines that set the demo identities' tokens,
// with what each identity does (indented for the terminal, or not for the
// file).
func exportLines(tokens map[string]string, indent bool) string {
	var b strings.Builder
	for _, id := range demoIdentities {
		if indent {
			b.WriteString("  ")
		}
		fmt.Fprintf(&b, "export %s=%s   # %s: %s\n", strings.ToUpper(id.Subject), tokens[id.Subject], id.Role, strings.Join(id.Groups, ", "))
	}
	return b.String()
}

// demoFirstSteps are the first commands of the README's walk-through (a
// test holds them to it), for the demo's site.
func demoFirstSteps(site demoSite) string {
	host := strings.TrimPrefix(site.base(), "http://")
	steps := `  curl -s localhost:8080/devices
  curl -si -X POST localhost:8080/devices/2/wipe -H "Authorization: Bearer $ALICE" \
       -H "Approval-Justification: INC-4711 phone reported stolen" | tee /tmp/parked.txt
  ID=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' /tmp/parked.txt)
  curl -s -X POST localhost:8080/.approvals/api/v1/requests/$ID/approve -H "Authorization: Bearer $BOB" \
       -H "Content-Type: application/json" -d '{"notes": "confirmed with the owner"}'
  curl -si -X POST localhost:8080/.approvals/api/v1/requests/$ID/complete -H "Authorization: Bearer $ALICE"
`
	return strings.ReplaceAll(steps, "localhost:8080", host)
}

// demoText is what the demo prints once it is ready: where things are,
// the identities' tokens, and how to start.
func demoText(site demoSite, data, logFile, envFile string, tokens map[string]string) string {
	logs := logFile + "   (--verbose shows them here)"
	if logFile == "" {
		logs = "on stderr (--verbose)"
	}
	return fmt.Sprintf(`
Approval gateway demo: the gateway, with an embedded etcd, in front of the
example admin API.

  Console   %[1]s/.approvals/   sign in as alice, bob, carol or dave
  API       %[1]s/              the example admin API, through the gateway
  Logs      %[2]s
  Data      %[3]s   (temporary unless --data DIR)

Paste these into another shell (they are also in %[4]s):

%[5]s
Then follow the walk-through in README.md, which starts with:

%[6]s
Bob can approve in the console instead: open %[1]s/.approvals/ and sign in
as bob. Outside business hours (08-18 UTC, Monday to Friday) the policy asks
one more approver: dave.

Ctrl-C stops the demo.
`, site.base(), logs, data, envFile, exportLines(tokens, true), demoFirstSteps(site))
}
