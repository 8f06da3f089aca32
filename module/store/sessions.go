package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Console sessions are kept in etcd, under a hash of their id, with a
// lease of their lifetime: a sign-out removes one on every gateway at once,
// so a copied session cookie stops working, and etcd drops it on expiry.

func (s *Store) sessionKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return s.prefix + "sessions/" + hex.EncodeToString(sum[:])
}

// OpenSession records session id as signed in for ttl.
func (s *Store) OpenSession(ctx context.Context, id string, ttl time.Duration) (err error) {
	defer s.timed("session_open", time.Now(), &err)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	lease, err := s.cli.Grant(ctx, int64(max(ttl/time.Second, 1)))
	if err != nil {
		return unavailable(err)
	}
	if _, err := s.cli.Put(ctx, s.sessionKey(id), strconv.FormatInt(int64(lease.ID), 16), clientv3.WithLease(lease.ID)); err != nil {
		return unavailable(err)
	}
	return nil
}

// SessionOpen reports whether session id is signed in: recorded, not
// signed out, not expired.
func (s *Store) SessionOpen(ctx context.Context, id string) (_ bool, err error) {
	defer s.timed("session_check", time.Now(), &err)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.sessionKey(id), clientv3.WithCountOnly())
	if err != nil {
		return false, unavailable(err)
	}
	return resp.Count == 1, nil
}

// CloseSession signs session id out on every gateway: its key goes, and
// the lease it was kept under with it.
func (s *Store) CloseSession(ctx context.Context, id string) (err error) {
	defer s.timed("session_close", time.Now(), &err)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, s.sessionKey(id), clientv3.WithPrevKV())
	if err != nil {
		return unavailable(err)
	}
	for _, kv := range resp.PrevKvs {
		if lease, err := strconv.ParseInt(string(kv.Value), 16, 64); err == nil {
			_, _ = s.cli.Revoke(ctx, clientv3.LeaseID(lease)) // best effort: it expires anyway
		}
	}
	return nil
}
