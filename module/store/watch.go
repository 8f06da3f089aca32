package store

import (
	"context"
	"crypto/rand"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// SharedSecret returns the secret stored under name, creating it (32
// random bytes) if absent, so that every gateway on the store uses the same
// one.
func (s *Store) SharedSecret(ctx context.Context, name string) ([]byte, error) {
	key := s.prefix + "secrets/" + name
	fresh := make([]byte, 32)
	if _, err := rand.Read(fresh); err != nil {
		return nil, err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Txn(ctx).
		If(clientv3.Compare(clientv3.CreateRevision(key), "=", 0)).
		Then(clientv3.OpPut(key, string(fresh))).
		Else(clientv3.OpGet(key)).
		Commit()
	if err != nil {
		return nil, unavailable(err)
	}
	if resp.Succeeded {
		return fresh, nil
	}
	return resp.Responses[0].GetResponseRange().Kvs[0].Value, nil
}

// WatchRequests calls fn with every request written from now on, until
// ctx ends; after a broken watch it resumes from the last revision seen.
func (s *Store) WatchRequests(ctx context.Context, fn func(*record.Record)) {
	rev := int64(0)
	for ctx.Err() == nil {
		opts := []clientv3.OpOption{clientv3.WithPrefix()}
		if rev > 0 {
			opts = append(opts, clientv3.WithRev(rev+1))
		}
		wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
		wc := s.cli.Watch(wctx, s.prefix+"requests/", opts...)
	watch:
		for {
			select {
			case <-ctx.Done():
				cancel()
				return
			case resp, ok := <-wc:
				if !ok || resp.Err() != nil {
					if resp.CompactRevision > 0 {
						rev = 0 // fell behind compaction: from now on
					}
					break watch
				}
				rev = resp.Header.Revision
				for _, ev := range resp.Events {
					if ev.Type != clientv3.EventTypePut {
						continue
					}
					if rec, err := decode(ev.Kv.Value); err == nil {
						fn(rec)
					}
				}
			}
		}
		cancel()
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}
