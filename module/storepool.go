package approvalgateway

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/etcdembed"
	"github.com/approval-gateway/gateway/module/store"
	"github.com/caddyserver/caddy/v2"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
)

// stores holds etcd clients (and embedded servers) across configuration
// reloads: a reload provisions the new handler before the old one is
// cleaned up, so the pooled value is reused, never reopened. An embedded
// etcd opened twice on one directory would deadlock on its file lock.
var stores = caddy.NewUsagePool()

// pooledStore is one connection to etcd, with its embedded server if any.
type pooledStore struct {
	server *etcdembed.Server
	cli    *clientv3.Client
}

// Destruct closes the client and stops the embedded server.
func (p *pooledStore) Destruct() error {
	err := p.cli.Close()
	if p.server != nil {
		p.server.Close()
	}
	return err
}

// provisionStore gets the configured store from the pool, creating it on
// first use.
func (h *Handler) provisionStore(repl *caddy.Replacer, observe func(string, time.Duration, error)) (*store.Store, error) {
	cfg := h.Store
	if cfg == nil || (cfg.Embedded == nil && cfg.Etcd == nil) {
		cfg = &StoreConfig{Embedded: &EmbeddedStore{}}
	}
	var (
		key       string
		construct caddy.Constructor
		opts      = store.Options{CaseSensitiveSubjects: h.CaseSensitiveSubjects, Logger: h.logger.Named("store")}
	)
	logger := h.logger.Named("etcd")
	if e := cfg.Embedded; e != nil {
		dir := repl.ReplaceKnown(e.Dir, "")
		if dir == "" {
			dir = defaultEmbeddedDir()
		}
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, fmt.Errorf("store embedded: %w", err)
		}
		listen, peer := repl.ReplaceKnown(e.Listen, ""), repl.ReplaceKnown(e.ListenPeer, "")
		key = "embedded:" + abs
		opts.Prefix = e.Prefix
		construct = func() (caddy.Destructor, error) {
			srv, err := etcdembed.Start(etcdembed.Options{Dir: abs, ClientURL: listen, PeerURL: peer, Logger: logger})
			if err != nil {
				return nil, fmt.Errorf("store embedded: %w", err)
			}
			cli, err := clientv3.New(clientv3.Config{Endpoints: []string{srv.Endpoint}, DialTimeout: 5 * time.Second, Logger: logger})
			if err != nil {
				srv.Close()
				return nil, fmt.Errorf("store embedded: %w", err)
			}
			logger.Info("embedded etcd started", zap.String("dir", abs), zap.String("endpoint", srv.Endpoint))
			return &pooledStore{server: srv, cli: cli}, nil
		}
	} else {
		e := cfg.Etcd
		c := clientv3.Config{DialTimeout: time.Duration(e.DialTimeout), Logger: logger,
			Username: repl.ReplaceKnown(e.Username, ""), Password: repl.ReplaceKnown(e.Password, "")}
		if c.DialTimeout <= 0 {
			c.DialTimeout = 5 * time.Second
		}
		for _, ep := range e.Endpoints {
			c.Endpoints = append(c.Endpoints, repl.ReplaceKnown(ep, ""))
		}
		tlsFiles := []string{repl.ReplaceKnown(e.TLSCA, ""), repl.ReplaceKnown(e.TLSCert, ""), repl.ReplaceKnown(e.TLSKey, "")}
		tlsCfg, err := clientTLS(tlsFiles[0], tlsFiles[1], tlsFiles[2])
		if err != nil {
			return nil, fmt.Errorf("store etcd: %w", err)
		}
		c.TLS = tlsCfg
		// The key identifies the connection without holding the password.
		sum := sha256.Sum256([]byte(strings.Join(append(append(c.Endpoints, tlsFiles...), c.Username, c.Password), "\x00")))
		key = "etcd:" + hex.EncodeToString(sum[:])
		opts.Prefix, opts.Timeout = e.Prefix, time.Duration(e.Timeout)
		construct = func() (caddy.Destructor, error) {
			// clientv3.New does not wait for the cluster: an unreachable etcd
			// makes judged calls answer 503 until it is back.
			cli, err := clientv3.New(c)
			if err != nil {
				return nil, fmt.Errorf("store etcd: %w", err)
			}
			return &pooledStore{cli: cli}, nil
		}
	}
	// Each site keeps its keys apart on the store.
	site := ""
	if h.site() != approvals.DefaultSite {
		site = h.site()
	}
	if opts.Prefix != "" {
		if err := store.ValidatePrefix(opts.Prefix); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	opts.Prefix = store.SitePrefix(opts.Prefix, site)
	val, _, err := stores.LoadOrNew(key, construct)
	if err != nil {
		return nil, err
	}
	h.storeKey = key
	opts.Observe = observe
	st, err := store.New(val.(*pooledStore).cli, opts)
	if err != nil {
		return nil, fmt.Errorf("store: %w", err)
	}
	return st, nil
}

// clientTLS builds the TLS configuration for etcd from PEM files; nil when
// no file is given.
func clientTLS(ca, cert, key string) (*tls.Config, error) {
	if ca == "" && cert == "" && key == "" {
		return nil, nil
	}
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if ca != "" {
		pem, err := os.ReadFile(ca)
		if err != nil {
			return nil, fmt.Errorf("tls_ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls_ca: no certificate in %s", ca)
		}
		cfg.RootCAs = pool
	}
	if (cert == "") != (key == "") {
		return nil, errors.New("tls_cert and tls_key go together")
	}
	if cert != "" {
		pair, err := tls.LoadX509KeyPair(cert, key)
		if err != nil {
			return nil, fmt.Errorf("tls_cert/tls_key: %w", err)
		}
		cfg.Certificates = []tls.Certificate{pair}
	}
	return cfg, nil
}
