package main

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
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
	embedded := func(name string, etcdPort int) string { return embeddedStore(work, name, etcdPort) }
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
	p, err := start(e.work, name, ready, []string{"BENCH_SECRET=" + secret, "XDG_DATA_HOME=" + e.work, "XDG_CONFIG_HOME=" + e.work},
		e.bin, "run", "--config", file, "--adapter", "caddyfile")
	if err == nil && strings.HasSuffix(ready, "/.approvals/healthz") {
		// A gateway answers 503 until its store answers and its runtime
		// policies are loaded: wait for that, or the first calls fail.
		if err = healthy(ready, 60*time.Second); err != nil {
			p.stop()
			return nil, fmt.Errorf("%s: %w; see %s", name, err, p.log)
		}
	}
	return p, err
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

// gatewayOn starts one more gateway in front of the backend, on store
// (a store block) with the policies in the directory policies, and
// returns it with its URL and its admin endpoint.
func (e *env) gatewayOn(name, store, policies string) (p *proc, url, admin string, err error) {
	port, adminPort := freePort(), freePort()
	url, admin = fmt.Sprintf("http://127.0.0.1:%d", port), fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	p, err = e.caddy(name, gatewayConfig(e.work, name, adminPort, port, store, policies, e.backendAddr, ""), url+"/.approvals/healthz")
	return p, url, admin, err
}

// embeddedStore is the store block of an embedded etcd of the gateway's
// own, in the working directory.
func embeddedStore(work, name string, etcdPort int) string {
	return fmt.Sprintf("embedded %s {\n\t\t\tlisten http://127.0.0.1:%d\n\t\t}", filepath.Join(work, name+"-etcd"), etcdPort)
}

// etcdStore is the store block of an external etcd at endpoint.
func etcdStore(endpoint, prefix string) string {
	s := "etcd {\n\t\t\tendpoints " + endpoint
	if prefix != "" {
		s += "\n\t\t\tprefix " + prefix
	}
	return s + "\n\t\t}"
}

// startEtcd runs a one-member etcd as a process of its own (the embed
// package in test/fault/etcdmember, built next to the gateway) and
// returns it with its client URL. The embed package serves etcd's
// Prometheus metrics on the client URL too (client URL + "/metrics").
func startEtcd(work, name string) (*proc, string, error) {
	client, peer := fmt.Sprintf("http://127.0.0.1:%d", freePort()), fmt.Sprintf("http://127.0.0.1:%d", freePort())
	p, err := start(work, name, client+"/health", nil, filepath.Join(work, "etcdmember"),
		"-name", "m0", "-dir", filepath.Join(work, name+"-data"), "-client", client, "-peer", peer, "-cluster", "m0="+peer)
	return p, client, err
}

// extra is a gateway started for one scenario, with what it needs; close
// stops all of it.
type extra struct {
	url, admin string
	gw, etcd   *proc
	endpoint   string           // the etcd's client URL, when it is external
	cli        *clientv3.Client // of the etcd, when it is external
}

func (x *extra) close() {
	if x.cli != nil {
		x.cli.Close()
	}
	x.gw.stop()
	x.etcd.stop()
}

// bodyGateway starts a gateway whose policy reads the body
// (bench/policies-body), on an embedded etcd of its own. It runs for B″
// only, so that it idles during no other scenario.
func (e *env) bodyGateway() (*extra, error) {
	dir, err := filepath.Abs("bench/policies-body")
	if err != nil {
		return nil, err
	}
	gw, url, admin, err := e.gatewayOn("body", embeddedStore(e.work, "body", freePort()), dir)
	if err != nil {
		return nil, err
	}
	return &extra{url: url, admin: admin, gw: gw}, nil
}

// externalGateway starts an etcd as a process of its own and a gateway
// with the shipped library on it (for C against an external etcd, so the
// etcd's work and garbage are not in the gateway's process; for S, whose
// etcd's /metrics count the gateway's watches). name tells the processes,
// logs and data directories of one scenario from another's.
func (e *env) externalGateway(name string) (*extra, error) {
	etcd, endpoint, err := startEtcd(e.work, "etcd-"+name)
	if err != nil {
		return nil, err
	}
	x := &extra{etcd: etcd, endpoint: endpoint}
	policies, err := filepath.Abs("policies")
	if err == nil {
		x.gw, x.url, x.admin, err = e.gatewayOn("gateway-"+name, etcdStore(endpoint, ""), policies)
	}
	if err == nil {
		x.cli, err = clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 5 * time.Second})
	}
	if err != nil {
		x.close()
		return nil, err
	}
	return x, nil
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
