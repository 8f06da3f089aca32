package store

import (
	"context"
	"encoding/json"
	"fmt"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func (s *Store) notifyCursorKey(target string) string { return s.prefix + "notify/cursors/" + target }

// NotifyCursor returns where delivery to a target stands; a new target
// starts from now.
func (s *Store) NotifyCursor(ctx context.Context, target string) (AuditCursor, error) {
	cctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(cctx, s.notifyCursorKey(target))
	if err != nil {
		return AuditCursor{}, unavailable(err)
	}
	if len(resp.Kvs) == 0 {
		c := AuditCursor{Rev: resp.Header.Revision + 1, Index: -1}
		return c, s.SetNotifyCursor(ctx, target, c)
	}
	var c AuditCursor
	if _, err := fmt.Sscanf(string(resp.Kvs[0].Value), "%d %d", &c.Rev, &c.Index); err != nil {
		return AuditCursor{}, fmt.Errorf("notify cursor of %s: %w", target, err)
	}
	return c, nil
}

// SetNotifyCursor records that delivery to a target is done up to c.
func (s *Store) SetNotifyCursor(ctx context.Context, target string, c AuditCursor) error {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err := s.cli.Put(ctx, s.notifyCursorKey(target), fmt.Sprintf("%d %d", c.Rev, c.Index))
	return unavailable(err)
}

// LogDelivery keeps the log of one event's delivery to one target.
func (s *Store) LogDelivery(ctx context.Context, target string, c AuditCursor, d any) error {
	b, err := json.Marshal(d)
	if err != nil {
		return err
	}
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	_, err = s.cli.Put(ctx, fmt.Sprintf("%snotify/deliveries/%020d-%06d/%s", s.prefix, c.Rev, c.Index, target), string(b))
	return unavailable(err)
}

// Deliveries returns the newest delivery logs, up to limit, as raw JSON.
func (s *Store) Deliveries(ctx context.Context, limit int) ([]json.RawMessage, error) {
	ctx, cancel := s.ctx(ctx)
	defer cancel()
	resp, err := s.cli.Get(ctx, s.prefix+"notify/deliveries/", clientv3.WithPrefix(),
		clientv3.WithSort(clientv3.SortByKey, clientv3.SortDescend), clientv3.WithLimit(int64(pageSize(limit))))
	if err != nil {
		return nil, unavailable(err)
	}
	out := make([]json.RawMessage, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		out = append(out, json.RawMessage(kv.Value))
	}
	return out, nil
}
