package approvals

import (
	"context"
	"errors"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"go.etcd.io/etcd/client/v3/concurrency"
	"go.uber.org/zap"
)

// runElected runs work while this gateway holds the named role: the
// gateways sharing a store campaign for it through an etcd election, so one
// holds it at a time. work gets a context that ends when the role is lost
// (session expired) or stop is called; after an error it campaigns again.
// leading reports whether this gateway holds the role. The returned
// function resigns and waits.
func (s *Service) runElected(role string, leading *atomic.Bool, work func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ctx.Err() == nil {
			if err := s.lead(ctx, role, leading, work); err != nil && ctx.Err() == nil {
				s.log.Warn(role+" election", zap.Error(err))
				select {
				case <-ctx.Done():
				case <-time.After(2 * time.Second):
				}
			}
		}
	}()
	return func() { cancel(); <-done }
}

// lead campaigns once, then runs work until it returns or the role is lost.
func (s *Service) lead(ctx context.Context, role string, leading *atomic.Bool, work func(context.Context) error) error {
	session, err := concurrency.NewSession(s.o.Store.Client(), concurrency.WithTTL(10), concurrency.WithContext(ctx))
	if err != nil {
		return err
	}
	defer session.Close()
	election := concurrency.NewElection(session, s.o.Store.Prefix()+role+"/")
	if err := election.Campaign(ctx, uuid.NewString()); err != nil {
		return err
	}
	s.log.Info("elected as the " + role)
	leading.Store(true)
	defer leading.Store(false)
	defer func() {
		rctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
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
	err = work(wctx)
	select {
	case <-session.Done():
		if ctx.Err() == nil {
			return errors.New("lost the " + role + " session")
		}
	default:
	}
	return err
}
