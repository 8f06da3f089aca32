package approvalgateway

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// pki writes a CA, a server certificate for 127.0.0.1 and a client
// certificate, as PEM files in dir.
func pki(t *testing.T, dir string) map[string]string {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test etcd CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	files := map[string]string{}
	write := func(name, typ string, der []byte) {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		files[name] = p
	}
	write("ca.pem", "CERTIFICATE", caDER)
	leaf := func(name string, serial int64, usage x509.ExtKeyUsage) {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{usage},
			IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		kder, _ := x509.MarshalECPrivateKey(key)
		write(name+".pem", "CERTIFICATE", der)
		write(name+"-key.pem", "EC PRIVATE KEY", kder)
	}
	leaf("server", 2, x509.ExtKeyUsageServerAuth)
	leaf("client", 3, x509.ExtKeyUsageClientAuth)
	return files
}

// loadSite runs a gateway site whose store block is given.
func loadSite(t *testing.T, storeBlock, logFile string) (*gateway, error) {
	t.Helper()
	g := newGateway(t)
	g.store, g.logFile = storeBlock, logFile
	adapted, _, err := caddyconfig.GetAdapter("caddyfile").Adapt([]byte(g.caddyfile("")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(adapted), "s3cr3t-etcd-pw") {
		t.Fatal("the adapted configuration holds the etcd password")
	}
	if err := caddy.Load(adapted, true); err != nil {
		return nil, err
	}
	t.Cleanup(func() { _ = caddy.Stop() })
	return g, nil
}

// TestEtcdTLSAndAuth: the gateway reaches etcd over TLS with a client
// certificate, and as an etcd user whose password comes from the
// environment; a wrong password fails without showing it.
func TestEtcdTLSAndAuth(t *testing.T) {
	dir := t.TempDir()
	files := pki(t, dir)
	clientURL := "https://" + testkit.Addr(t)
	srv, err := etcdembed.Start(etcdembed.Options{Dir: t.TempDir(), ClientURL: clientURL,
		CertFile: files["server.pem"], KeyFile: files["server-key.pem"], TrustedCAFile: files["ca.pem"], Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)

	// An etcd user for the gateway, allowed only its prefix; then auth on.
	tlsCfg, err := clientTLS(files["ca.pem"], files["client.pem"], files["client-key.pem"])
	if err != nil {
		t.Fatal(err)
	}
	admin, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, TLS: tlsCfg, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	ctx := context.Background()
	for _, step := range []func() error{
		func() error { _, err := admin.UserAdd(ctx, "root", "root-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "root", "root"); return err },
		func() error { _, err := admin.RoleAdd(ctx, "approvals"); return err },
		func() error {
			_, err := admin.RoleGrantPermission(ctx, "approvals", "/approvals/", clientv3.GetPrefixRangeEnd("/approvals/"), clientv3.PermissionType(clientv3.PermReadWrite))
			return err
		},
		func() error { _, err := admin.UserAdd(ctx, "gateway", "s3cr3t-etcd-pw"); return err },
		func() error { _, err := admin.UserGrantRole(ctx, "gateway", "approvals"); return err },
		func() error { _, err := admin.AuthEnable(ctx); return err },
	} {
		if err := step(); err != nil {
			t.Fatal(err)
		}
	}

	t.Setenv("ETCD_PASSWORD", "s3cr3t-etcd-pw")
	block := func(password string) string {
		return fmt.Sprintf("store etcd {\n\t\t\tendpoints %s\n\t\t\ttls_ca %s\n\t\t\ttls_cert %s\n\t\t\ttls_key %s\n\t\t\tusername gateway\n\t\t\tpassword %s\n\t\t}",
			srv.Endpoint, files["ca.pem"], files["client.pem"], files["client-key.pem"], password)
	}
	logFile := filepath.Join(t.TempDir(), "caddy.log")
	g, err := loadSite(t, block("{env.ETCD_PASSWORD}"), logFile)
	if err != nil {
		t.Fatal(err)
	}
	testkit.WaitHealthy(t, g.base+"/.approvals/healthz")
	alice, bob := token(t, "alice"), token(t, "bob", "approvers")
	id := g.Expect(g.Do("DELETE", "/apps/1", alice, "", "Approval-Justification", "over TLS"), http.StatusAccepted, "").Body["id"].(string)
	g.Expect(g.Do("POST", api+id+"/approve", bob, ""), http.StatusOK, "")
	g.Expect(g.Do("POST", api+id+"/complete", alice, ""), http.StatusOK, "")
	_ = caddy.Stop()

	// A wrong password: judged calls are refused (fail closed), and the
	// password is in no error.
	t.Setenv("WRONG_PASSWORD", "not-the-pw-123")
	g2, err := loadSite(t, block("{env.WRONG_PASSWORD}"), logFile)
	if err != nil {
		if strings.Contains(err.Error(), "not-the-pw-123") {
			t.Fatalf("the error shows the password: %v", err)
		}
		checkLog(t, logFile, alice, bob)
		return
	}
	a := g2.Do("DELETE", "/apps/2", alice, "", "Approval-Justification", "x")
	if a.Status != http.StatusServiceUnavailable || strings.Contains(a.Raw, "not-the-pw-123") {
		t.Fatalf("with a wrong etcd password: %d %s", a.Status, a.Raw)
	}
	if len(g2.backend.Mutating()) != 0 {
		t.Fatal("a call passed without the store")
	}
	checkLog(t, logFile, alice, bob)
}

// checkLog fails if the debug log holds a password or a token.
func checkLog(t *testing.T, logFile string, more ...string) {
	t.Helper()
	_ = caddy.Stop() // flush
	b, err := os.ReadFile(logFile)
	if err != nil || len(b) == 0 {
		t.Fatalf("no log written: %v", err)
	}
	for _, secret := range append([]string{"s3cr3t-etcd-pw", "not-the-pw-123", "root-pw"}, more...) {
		if strings.Contains(string(b), secret) {
			t.Fatalf("the log holds %q", secret)
		}
	}
}
