package store

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// RunElected runs fn while this gateway holds the role name: the gateways
// sharing the store campaign for it through an etcd election, so one holds
// it at a time. fn gets a context that ends when the role is lost (its
// session expired) or ctx ends; when fn returns or the role is lost, the
// gateway resigns and campaigns again, after a pause if there was an
// error. RunElected returns when ctx ends.
func (s *Store) RunElected(ctx context.Context, name string, fn func(context.Context) error) {
	v, _ := s.roles.LoadOrStore(name, new(atomic.Bool))
	leading, work := v.(*atomic.Bool), fn
	fn = func(ctx context.Context) error {
		leading.Store(true)
		defer leading.Store(false)
		return work(ctx)
	}
	for ctx.Err() == nil {
		if err := s.lead(ctx, name, fn); err != nil && ctx.Err() == nil {
			s.log.Warn(name+" election", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(2 * time.Second):
			}
		}
	}
}

// lead campaigns once, then runs fn until it returns or the role is lost.
func (s *Store) lead(ctx context.Context, name string, fn func(context.Context) error) error {
	session, err := concurrency.NewSession(s.cli, concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer session.Close()
	election := concurrency.NewElection(session, s.prefix+name+"/")
	if err := election.Campaign(ctx, uuid.NewString()); err != nil {
		return err
	}
	defer func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = election.Resign(rctx)
	}()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go func() {
		select {
		case <-session.Done():
			cancel()
		case <-wctx.Done():
		}
	}()
	err = fn(wctx)
	select {
	case <-session.Done():
		if ctx.Err() == nil {
			return errors.New("lost the " + name + " session")
		}
	default:
	}
	return err
}

// Leads reports whether this gateway holds the role name now.
func (s *Store) Leads(name string) bool {
	leading, ok := s.roles.Load(name)
	return ok && leading.(*atomic.Bool).Load()
}
