// Package etcdkit runs a real embedded etcd for a test. It is apart from
// testkit so that tests that need no etcd do not link it.
package etcdkit

import (
	"testing"
	"time"

	"github.com/approval-gateway/gateway/module/etcdembed"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// Start runs an embedded etcd in a temporary directory for the duration of
// the test and returns a client connected to it.
func Start(t testing.TB) (*clientv3.Client, *etcdembed.Server) {
	t.Helper()
	srv, err := etcdembed.Start(etcdembed.Options{Dir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(srv.Close)
	return Dial(t, srv.Endpoint), srv
}

// Dial connects a client to endpoint, closed when the test ends.
func Dial(t testing.TB, endpoint string) *clientv3.Client {
	t.Helper()
	cli, err := clientv3.New(clientv3.Config{Endpoints: []string{endpoint}, DialTimeout: 10 * time.Second, Logger: zap.NewNop()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Close() })
	return cli
}
