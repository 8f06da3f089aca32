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

// Held values: something a sign-in carries out when it is back (the
// console's step-up), too large for a cookie, kept sealed by the caller
// under a hash of a random id with a lease of ttl, and taken once.

func (s *Store) heldKey(id string) string {
	sum := sha256.Sum256([]byte(id))
	return s.prefix + "held/" + hex.EncodeToString(sum[:])
}

// Hold keeps value under id for ttl.
func (s *Store) Hold(ctx context.Context, id string, value []byte, ttl time.Duration) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	lease, err := s.cli.Grant(ctx, int64(max(ttl/time.Second, 1)))
	if err != nil {
		return unavailable(err)
	}
	_, err = s.cli.Put(ctx, s.heldKey(id), string(value), clientv3.WithLease(lease.ID))
	return unavailable(err)
}

// Take returns the value held under id and removes it (nil when there is
// none: taken already, or expired).
func (s *Store) Take(ctx context.Context, id string) ([]byte, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Delete(ctx, s.heldKey(id), clientv3.WithPrevKV())
	if err != nil {
		return nil, unavailable(err)
	}
	if len(resp.PrevKvs) == 0 {
		return nil, nil
	}
	return resp.PrevKvs[0].Value, nil
}
