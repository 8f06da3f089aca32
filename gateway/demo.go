package main

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/approval-gateway/gateway/examples/adminapi"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "demo",
		Usage: "[--listen <addr>] [--data <dir>] [--policies <dir>]",
		Short: "Runs the gateway with embedded etcd in front of the example admin API",
		Long: `
Starts the example admin API on a loopback port, and the gateway in front of
it with an embedded etcd and the policies of --policies. It prints tokens for
a requester and an approver and the curl commands that walk through the
approval flow. Data lives in --data (a temporary directory by default, removed
on exit).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("listen", "127.0.0.1:8080", "address of the gateway")
			cmd.Flags().String("data", "", "directory of the embedded store (default: temporary)")
			cmd.Flags().String("policies", "policies", "directory of Rego policies")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdDemo)
		},
	})
}

// demoCaddyfile is the configuration the demo runs. The secret is read from
// the environment at provision time, so it is not in the configuration.
const demoCaddyfile = `{
	admin off
	persist_config off
	auto_https off
}

http://%s {
	approval_gateway {
		store embedded %s
		identity jwt {
			secret {env.APPROVAL_DEMO_SECRET}
			issuer approval-gateway-demo
		}
		policies %s
		admin_groups approval-admins
	}
	reverse_proxy %s
}
`

func cmdDemo(fl caddycmd.Flags) (int, error) {
	listen, data, policies := fl.String("listen"), fl.String("data"), fl.String("policies")
	if _, err := os.Stat(policies); err != nil {
		return exitFailure, fmt.Errorf("policies: %v (run from the repository root or pass --policies)", err)
	}
	policies, _ = filepath.Abs(policies)
	if data == "" {
		tmp, err := os.MkdirTemp("", "approval-demo-")
		if err != nil {
			return exitFailure, err
		}
		defer os.RemoveAll(tmp)
		data = tmp
	}
	data, _ = filepath.Abs(data)

	// The example admin API, on a loopback port of its own.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return exitFailure, err
	}
	api := adminapi.New()
	api.Log = log.New(os.Stderr, "example admin API: ", log.LstdFlags)
	backend := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = backend.Serve(ln) }()
	defer backend.Close()

	secretBytes := make([]byte, 32)
	if _, err := rand.Read(secretBytes); err != nil {
		return exitFailure, err
	}
	secret := hex.EncodeToString(secretBytes)
	if err := os.Setenv("APPROVAL_DEMO_SECRET", secret); err != nil {
		return exitFailure, err
	}

	cfgText := fmt.Sprintf(demoCaddyfile, listen, quote(data), quote(policies), ln.Addr().String())
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfgText), map[string]any{"filename": "demo"})
	if err != nil {
		return exitFailure, fmt.Errorf("demo configuration: %w", err)
	}
	for _, w := range warnings {
		log.Printf("warning: %s", w.String())
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return exitFailure, fmt.Errorf("starting the gateway: %w", err)
	}
	defer func() { _ = caddy.Stop() }()
	if err := waitReady("http://" + listen + "/.approvals/healthz"); err != nil {
		return exitFailure, err
	}

	const iss = "approval-gateway-demo"
	ids := demoIdentities()
	tokens := map[string]string{}
	for _, id := range ids {
		tok, err := mintToken(secret, id.sub, id.groups, "approval-gateway-demo", "", 12*time.Hour)
		if err != nil {
			return exitFailure, err
		}
		tokens[id.sub] = tok
	}
	fmt.Print(demoText(listen, data, ids, tokens))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("\nstopping")
	return 0, nil
}

func quote(s string) string {
	if strings.ContainsAny(s, " \t\"{}") {
		return `"` + strings.ReplaceAll(s, `"`, `\"`) + `"`
	}
	return s
}

type demoIdentity struct {
	sub, role string
	groups    []string
}

// demoIdentities are the people of the walk-through.
func demoIdentities() []demoIdentity {
	return []demoIdentity{
		{"alice", "requester", []string{"it-ops"}},
		{"bob", "approver and policy admin", []string{"approvers", "app-approvers", "device-approvers", "script-approvers", "rbac-approvers", "approval-admins"}},
		{"carol", "policy admin", []string{"approval-admins"}},
		{"dave", "after-hours and security approver", []string{"on-call-approvers", "security"}},
	}
}

func demoText(listen, data string, ids []demoIdentity, tokens map[string]string) string {
	var exports strings.Builder
	for _, id := range ids {
		fmt.Fprintf(&exports, "  export %s=%s   # %s: %s\n", strings.ToUpper(id.sub), tokens[id.sub], id.role, strings.Join(id.groups, ", "))
	}
	base := "http://" + listen
	return fmt.Sprintf(`
The approval gateway is running on %[1]s in front of the example admin API.
Embedded etcd data: %[2]s. Policies: the shipped library (policies/README.md).

Identities:
%[3]s
Reads pass straight through:
  curl -s %[1]s/devices

Wiping corporate device 1 passes (the devices policy trusts corporate devices):
  curl -s -X POST %[1]s/devices/1/wipe -H "Authorization: Bearer $ALICE"

Wiping personal device 2 is parked (202) instead of passed on:
  curl -s -X POST %[1]s/devices/2/wipe -H "Authorization: Bearer $ALICE" \
       -H "Approval-Justification: INC-4711 phone reported stolen" | tee /tmp/parked.json
  ID=$(sed -n 's/^{"id":"\([^"]*\)".*/\1/p' /tmp/parked.json)

Bob sees what waits for him, and approves it (Alice cannot approve her own).
Outside business hours (08-18 UTC, Monday to Friday) Dave approves too:
  curl -s "%[1]s/.approvals/api/v1/requests?view=received" -H "Authorization: Bearer $BOB"
  curl -s -X POST %[1]s/.approvals/api/v1/requests/$ID/approve -H "Authorization: Bearer $BOB" \
       -d '{"notes": "confirmed with the owner"}'
  curl -s -X POST %[1]s/.approvals/api/v1/requests/$ID/approve -H "Authorization: Bearer $DAVE"

Alice completes it: the gateway replays the stored call to the backend, once:
  curl -si -X POST %[1]s/.approvals/api/v1/requests/$ID/complete -H "Authorization: Bearer $ALICE"
  curl -s %[1]s/.approvals/api/v1/requests/$ID -H "Authorization: Bearer $ALICE"

Press Ctrl-C to stop.
`, base, data, exports.String())
}

// waitReady waits until the gateway's runtime policies are loaded (it
// answers judged calls with 503 until then), so the first command a
// newcomer pastes works.
func waitReady(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := c.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("the gateway did not become ready at %s", url)
}
