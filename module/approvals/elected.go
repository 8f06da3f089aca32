package approvals

import (
	"context"
	"sync/atomic"
)

// runElected runs work while this gateway holds the named role
// (store.RunElected), with leading saying whether it does. The returned
// function stops it and waits.
func (s *Service) runElected(role string, leading *atomic.Bool, work func(context.Context) error) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.o.Store.RunElected(ctx, role, func(ctx context.Context) error {
			s.log.Info("elected as the " + role)
			leading.Store(true)
			defer leading.Store(false)
			return work(ctx)
		})
	}()
	return func() { cancel(); <-done }
}
