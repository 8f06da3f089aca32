package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/golang-jwt/jwt/v5"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// secret signs the benchmark's tokens (HS256).
const secret = "bench-secret-bench-secret-bench-secret"

// globalOptions are the same for plain Caddy and the gateway.
const globalOptions = `{
	admin 127.0.0.1:%d
	auto_https off
	persist_config off
	storage file_system %s
}
`

// gatewayConfig is the Caddyfile of a gateway named name on port, with the
// store block store ("embedded …" or "etcd {…}"), the policies directory,
// extra approval_gateway options, in front of backend.
func gatewayConfig(work, name string, adminPort, port int, store, policies, backend, extra string) string {
	return fmt.Sprintf(globalOptions, adminPort, filepath.Join(work, name+"-storage")) + fmt.Sprintf(`
http://127.0.0.1:%d {
	approval_gateway {
		store %s
		identity jwt {
			secret {env.BENCH_SECRET}
		}
		policies %s%s
	}
	reverse_proxy %s
}
`, port, store, policies, extra, backend)
}

// env is the running side-by-side setup.
type env struct {
	work, bin        string
	backendAddr      string
	backend, plain   *proc
	gateway, minimal *proc
	plainURL, gwURL  string
	minURL, minAdmin string // a gateway with a one-rule policy
	gwAdmin          string
	plainAdmin       string
	etcd             *clientv3.Client
	reader, releaser string   // a token for GETs; one of a trusted app releaser
	requesters       []string // tokens of distinct requesters (parks)
	approvers        []string // app-approvers, on-call-approvers
}

func newEnv(work, bin string) (*env, error) {
	e := &env{work: work, bin: bin}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	e.backendAddr = fmt.Sprintf("127.0.0.1:%d", freePort())
	if e.backend, err = start(work, "backend", "http://"+e.backendAddr+"/", nil, self, "backend", e.backendAddr); err != nil {
		return nil, err
	}
	plainPort, gwPort, etcdPort := freePort(), freePort(), freePort()
	e.plainURL = fmt.Sprintf("http://127.0.0.1:%d", plainPort)
	e.gwURL = fmt.Sprintf("http://127.0.0.1:%d", gwPort)
	plainAdminPort := freePort()
	e.plainAdmin = fmt.Sprintf("http://127.0.0.1:%d", plainAdminPort)
	plain := fmt.Sprintf(globalOptions, plainAdminPort, filepath.Join(work, "plain-storage")) + fmt.Sprintf(`
http://127.0.0.1:%d {
	reverse_proxy %s
}
`, plainPort, e.backendAddr)
	adminPort := freePort()
	e.gwAdmin = fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	policies, err := filepath.Abs("policies")
	if err != nil {
		return nil, err
	}
	embedded := func(name string, etcdPort int) string {
		return fmt.Sprintf("embedded %s {\n\t\t\tlisten http://127.0.0.1:%d\n\t\t}", filepath.Join(work, name+"-etcd"), etcdPort)
	}
	minimal, err := filepath.Abs("bench/policies")
	if err != nil {
		return nil, err
	}
	minPort := freePort()
	e.minURL = fmt.Sprintf("http://127.0.0.1:%d", minPort)
	if e.plain, err = e.caddy("plain", plain, e.plainURL+"/"); err != nil {
		return nil, err
	}
	if e.gateway, err = e.caddy("gateway", gatewayConfig(work, "gateway", adminPort, gwPort, embedded("gateway", etcdPort), policies, e.backendAddr, ""), e.gwURL+"/.approvals/healthz"); err != nil {
		return nil, err
	}
	minAdminPort := freePort()
	e.minAdmin = fmt.Sprintf("http://127.0.0.1:%d", minAdminPort)
	if e.minimal, err = e.caddy("minimal", gatewayConfig(work, "minimal", minAdminPort, minPort, embedded("minimal", freePort()), minimal, e.backendAddr, ""), e.minURL+"/.approvals/healthz"); err != nil {
		return nil, err
	}
	e.etcd, err = clientv3.New(clientv3.Config{Endpoints: []string{fmt.Sprintf("http://127.0.0.1:%d", etcdPort)}, DialTimeout: 5 * time.Second})
	if err != nil {
		return nil, err
	}
	e.reader = token("reader", "it-ops")
	e.releaser = token("releaser", "app-release-managers")
	for i := range 5000 {
		e.requesters = append(e.requesters, token(fmt.Sprintf("requester-%d", i), "it-ops"))
	}
	e.approvers = []string{token("approver-1", "app-approvers"), token("approver-2", "on-call-approvers")}
	return e, nil
}

// caddy starts the gateway binary on a Caddyfile.
func (e *env) caddy(name, caddyfile, ready string) (*proc, error) {
	file := filepath.Join(e.work, name+".Caddyfile")
	if err := os.WriteFile(file, []byte(caddyfile), 0o644); err != nil {
		return nil, err
	}
	return start(e.work, name, ready, []string{"BENCH_SECRET=" + secret, "XDG_DATA_HOME=" + e.work, "XDG_CONFIG_HOME=" + e.work},
		e.bin, "run", "--config", file, "--adapter", "caddyfile")
}

func (e *env) stop() {
	if e.etcd != nil {
		e.etcd.Close()
		e.etcd = nil
	}
	for _, p := range []*proc{e.gateway, e.minimal, e.plain, e.backend} {
		p.stop()
	}
	e.gateway, e.minimal, e.plain, e.backend = nil, nil, nil, nil
}

// token mints a one-day HS256 token.
func token(sub string, groups ...string) string {
	now := time.Now()
	s, err := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{"sub": sub, "groups": groups,
		"iat": now.Unix(), "exp": now.Add(24 * time.Hour).Unix()}).SignedString([]byte(secret))
	if err != nil {
		panic(err)
	}
	return s
}
