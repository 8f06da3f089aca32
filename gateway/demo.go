package main

import (
	"fmt"
	"io"
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
	"github.com/approval-gateway/gateway/internal/demoidp"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	caddycmd "github.com/caddyserver/caddy/v2/cmd"
	"github.com/spf13/cobra"
)

func init() {
	caddycmd.RegisterCommand(caddycmd.Command{
		Name:  "demo",
		Usage: "[--listen <addr>] [--data <dir>] [--policies <dir>] [--verbose]",
		Short: "Runs the gateway with embedded etcd in front of the example admin API, console included",
		Long: `
Starts the example admin API on a loopback port, an OpenID provider for the
demo identities, and the gateway in front of the API with an embedded etcd,
the policies of --policies and the web console. The site answers on every
host name at --listen (default :8080). It prints the console's address, API
tokens for the demo identities (from the same provider) and the first
commands of the README's walk-through; Caddy's logs go to a file it names
(--verbose shows them on stderr). Data lives in --data (a temporary
directory by default, removed on exit).`,
		CobraFunc: func(cmd *cobra.Command) {
			cmd.Flags().String("listen", ":8080", "address of the gateway's site (host:port; an empty host is every interface)")
			cmd.Flags().String("data", "", "directory of the embedded store and the log (default: temporary)")
			cmd.Flags().String("policies", "policies", "directory of Rego policies")
			cmd.Flags().Bool("verbose", false, "show Caddy's logs on stderr instead of writing them to a file")
			cmd.RunE = caddycmd.WrapCommandFuncForCobra(cmdDemo)
		},
	})
}

// demoIdentities are the people of the walk-through.
var demoIdentities = []demoidp.Identity{
	{Subject: "alice", Role: "requester", Groups: []string{"it-ops"}},
	{Subject: "bob", Role: "approver and policy admin", Groups: []string{"approvers", "app-approvers", "device-approvers", "script-approvers", "rbac-approvers", "approval-admins"}},
	{Subject: "carol", Role: "policy admin", Groups: []string{"approval-admins"}},
	{Subject: "dave", Role: "after-hours and security approver", Groups: []string{"on-call-approvers", "security"}},
}

// demoSite is where the demo listens and how people reach it.
type demoSite struct {
	bind, port string
	// public is the host people and tokens use: localhost unless --listen
	// names one.
	public string
}

func parseListen(listen string) (demoSite, error) {
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return demoSite{}, fmt.Errorf("--listen %q: %v (want host:port, or :port for every interface)", listen, err)
	}
	s := demoSite{bind: host, port: port, public: host}
	if host == "" || host == "0.0.0.0" || host == "::" {
		s.bind, s.public = "", "localhost"
	}
	if strings.Contains(s.public, ":") {
		s.public = "[" + s.public + "]"
	}
	return s, nil
}

// base is the site's URL as people type it.
func (s demoSite) base() string { return "http://" + s.public + ":" + s.port }

// dial is an address the demo itself reaches the site on.
func (s demoSite) dial() string {
	if s.bind == "" {
		return "127.0.0.1:" + s.port
	}
	return net.JoinHostPort(s.bind, s.port)
}

func cmdDemo(fl caddycmd.Flags) (int, error) {
	site, err := parseListen(fl.String("listen"))
	if err != nil {
		return exitUsage, err
	}
	policies, data := fl.String("policies"), fl.String("data")
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
	if err := os.MkdirAll(data, 0o700); err != nil {
		return exitFailure, err
	}

	logFile := filepath.Join(data, "gateway.log")
	var logs io.Writer = os.Stderr
	if !fl.Bool("verbose") {
		f, err := os.OpenFile(logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return exitFailure, err
		}
		defer f.Close()
		logs = f
	}

	// The example admin API, on a loopback port of its own.
	api := adminapi.New()
	api.Log = log.New(logs, "example admin API: ", log.LstdFlags)
	apiAddr, stopAPI, err := serveLoopback(api)
	if err != nil {
		return exitFailure, err
	}
	defer stopAPI()

	// The OpenID provider of the demo identities, reached through the site
	// at /oidc so that browsers find it where they find the console.
	idp, err := demoidp.New(demoidp.Options{Issuer: site.base() + "/oidc", Identities: demoIdentities,
		RedirectURIs: redirectURIs(site)})
	if err != nil {
		return exitFailure, err
	}
	idpAddr, stopIdP, err := serveLoopback(idp.Handler())
	if err != nil {
		return exitFailure, err
	}
	defer stopIdP()
	if err := os.Setenv("APPROVAL_DEMO_CLIENT_SECRET", idp.ClientSecret()); err != nil {
		return exitFailure, err
	}

	cfg := demoConfig{Site: site, Data: data, Policies: policies, API: apiAddr, IdP: idpAddr, Issuer: idp.Issuer(),
		KeysPath: idp.KeysPath(), ClientID: idp.ClientID(), LogFile: logFile, Verbose: fl.Bool("verbose")}
	cfgJSON, warnings, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(cfg.caddyfile()), map[string]any{"filename": "demo"})
	if err != nil {
		return exitFailure, fmt.Errorf("demo configuration: %w", err)
	}
	for _, w := range warnings {
		fmt.Fprintf(logs, "warning: %s\n", w.String())
	}
	if err := caddy.Load(cfgJSON, true); err != nil {
		return exitFailure, fmt.Errorf("starting the gateway (is %s free? --listen changes it): %w", fl.String("listen"), err)
	}
	defer func() { _ = caddy.Stop() }()
	if err := waitReady("http://" + site.dial() + "/.approvals/healthz"); err != nil {
		return exitFailure, fmt.Errorf("%w; the log says why: %s", err, logFile)
	}

	tokens := map[string]string{}
	for _, id := range demoIdentities {
		if tokens[id.Subject], err = idp.Token(id.Subject, 12*time.Hour); err != nil {
			return exitFailure, err
		}
	}
	envFile := filepath.Join(data, "demo.env")
	if err := os.WriteFile(envFile, []byte(exportLines(tokens, false)), 0o600); err != nil {
		return exitFailure, err
	}
	if fl.Bool("verbose") {
		logFile = ""
	}
	fmt.Print(demoText(site, data, logFile, envFile, tokens))

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	<-sig
	fmt.Println("\nstopping")
	return 0, nil
}

// serveLoopback serves h on a loopback port of its own.
func serveLoopback(h http.Handler) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return ln.Addr().String(), func() { _ = srv.Close() }, nil
}

// redirectURIs are the console's callback on every name the site answers
// to on this machine.
func redirectURIs(site demoSite) []string {
	hosts := []string{site.public, "localhost", "127.0.0.1", "[::1]"}
	if name, err := os.Hostname(); err == nil && name != "" {
		hosts = append(hosts, name)
	}
	var out []string
	for _, h := range hosts {
		out = append(out, "http://"+h+":"+site.port+"/.approvals/callback")
	}
	return out
}

// waitReady waits until the gateway's runtime policies are loaded (it
// answers judged calls with 503 until then), so the first command a
// newcomer pastes works.
func waitReady(url string) error {
	c := &http.Client{Timeout: 2 * time.Second}
	deadline := time.Now().Add(60 * time.Second)
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
