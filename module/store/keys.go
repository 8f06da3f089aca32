package store

import (
	"context"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Key sets: documents every gateway on the store shares (the attestation
// keys), read whole and replaced whole, fenced on their mod revision so
// that two gateways rotating at once cannot both win.

func (s *Store) keySetKey(name string) string { return s.prefix + "keys/" + name }

// KeySet returns the stored key set name and its mod revision (nil and 0
// when there is none).
func (s *Store) KeySet(ctx context.Context, name string) (_ []byte, _ int64, err error) {
	defer s.timed("keyset_get", time.Now(), &err)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.keySetKey(name))
	if err != nil {
		return nil, 0, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		return nil, 0, nil
	}
	return resp.Kvs[0].Value, resp.Kvs[0].ModRevision, nil
}

// PutKeySet replaces key set name if it is still at mod revision rev (0:
// absent). It reports false, with the stored set and its revision, when
// another write came first.
func (s *Store) PutKeySet(ctx context.Context, name string, raw []byte, rev int64) (_ bool, _ []byte, _ int64, err error) {
	defer s.timed("keyset_put", time.Now(), &err)
	key := s.keySetKey(name)
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.ModRevision(key), "=", rev)).
		Then(clientv3.OpPut(key, string(raw))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return false, nil, 0, unavailable(err)
	}
	if resp.Succeeded {
		return true, raw, resp.Header.Revision, nil
	}
	kvs := resp.Responses[0].GetResponseRange().Kvs
	if len(kvs) == 0 {
		return false, nil, 0, nil
	}
	return false, kvs[0].Value, kvs[0].ModRevision, nil
}
