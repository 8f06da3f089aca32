// Package etcdembed runs a single-member etcd inside the gateway process:
// the default store, and the store of tests. It listens on loopback
// ephemeral ports unless told otherwise, so several gateways and test runs
// share a machine.
package etcdembed

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"sync"
	"time"

	"go.etcd.io/etcd/client/pkg/v3/transport"
	"go.etcd.io/etcd/server/v3/embed"
	"go.uber.org/zap"
)

// Options configures an embedded etcd.
type Options struct {
	// Dir holds the data; created if missing.
	Dir string
	// ClientURL and PeerURL are where it listens. Default:
	// http://127.0.0.1:0 (an ephemeral loopback port).
	ClientURL string
	PeerURL   string
	// Name of the member. Default "gateway".
	Name string
	// StartTimeout bounds the wait for the member to be ready. Default 60s.
	StartTimeout time.Duration
	// Logger receives etcd's logs at Warn and above. Default: none.
	Logger *zap.Logger
	// CertFile and KeyFile serve the client URL over TLS (use an https
	// URL); with TrustedCAFile, clients must present a certificate it
	// signed.
	CertFile, KeyFile, TrustedCAFile string
}

// Server is a running embedded etcd.
type Server struct {
	etcd *embed.Etcd
	once sync.Once
	// Endpoint is the client URL to dial.
	Endpoint string
}

// Start starts an embedded etcd and waits until it serves.
func Start(opts Options) (*Server, error) {
	if opts.Dir == "" {
		return nil, errors.New("embedded etcd needs a data directory")
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("embedded etcd data directory: %w", err)
	}
	cfg := embed.NewConfig()
	cfg.Dir = opts.Dir
	cfg.Name = opts.Name
	if cfg.Name == "" {
		cfg.Name = "gateway"
	}
	client, err := parseURL(opts.ClientURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd client URL: %w", err)
	}
	peer, err := parseURL(opts.PeerURL)
	if err != nil {
		return nil, fmt.Errorf("embedded etcd peer URL: %w", err)
	}
	cfg.ListenClientUrls = []url.URL{client}
	cfg.AdvertiseClientUrls = []url.URL{client}
	cfg.ListenPeerUrls = []url.URL{peer}
	cfg.AdvertisePeerUrls = []url.URL{peer}
	cfg.InitialCluster = cfg.InitialClusterFromName(cfg.Name)
	if opts.CertFile != "" {
		cfg.ClientTLSInfo = transport.TLSInfo{CertFile: opts.CertFile, KeyFile: opts.KeyFile,
			TrustedCAFile: opts.TrustedCAFile, ClientCertAuth: opts.TrustedCAFile != ""}
	}
	// Keep history bounded: compact hourly, as operators of real clusters do.
	cfg.AutoCompactionMode = embed.CompactorModePeriodic
	cfg.AutoCompactionRetention = "1h"
	logger := opts.Logger
	if logger == nil {
		logger = zap.NewNop()
	}
	cfg.ZapLoggerBuilder = embed.NewZapLoggerBuilder(logger.WithOptions(zap.IncreaseLevel(zap.WarnLevel)))

	e, err := embed.StartEtcd(cfg)
	if err != nil {
		return nil, fmt.Errorf("starting embedded etcd in %s: %w", opts.Dir, err)
	}
	timeout := opts.StartTimeout
	if timeout <= 0 {
		timeout = time.Minute
	}
	select {
	case <-e.Server.ReadyNotify():
	case err := <-e.Err():
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s: %w", opts.Dir, err)
	case <-time.After(timeout):
		e.Close()
		return nil, fmt.Errorf("embedded etcd in %s not ready after %s", opts.Dir, timeout)
	}
	scheme := "http://"
	if opts.CertFile != "" {
		scheme = "https://"
	}
	return &Server{etcd: e, Endpoint: scheme + e.Clients[0].Addr().String()}, nil
}

// Close stops the server and waits until its files are released. It may be
// called more than once.
func (s *Server) Close() {
	s.once.Do(func() {
		s.etcd.Close()
		<-s.etcd.Server.StopNotify()
	})
}

func parseURL(s string) (url.URL, error) {
	if s == "" {
		s = "http://127.0.0.1:0"
	}
	u, err := url.Parse(s)
	if err != nil {
		return url.URL{}, err
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return url.URL{}, fmt.Errorf("%q: want http(s)://host:port", s)
	}
	return *u, nil
}
