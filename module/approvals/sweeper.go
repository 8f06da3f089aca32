package approvals

import (
	"context"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
)

// SweepStats counts what one sweep did.
type SweepStats struct {
	Expired, Failed, Removed, Reminded int
	AuditPruned                        int64
}

// Sweep moves overdue requests to expired, fails replays claimed longer
// than the claim timeout ago, removes terminal requests past their
// retention, and prunes the audit log. Each state change is fenced on the
// record's mod revision, so sweeps racing each other (or an action) never
// both win.
func (s *Service) Sweep(ctx context.Context) (SweepStats, error) {
	var st SweepStats
	now := s.o.Clock()
	err := s.o.Store.EachPending(ctx, func(rec *record.Record) error {
		if rec.Due(now, s.o.ClaimTimeout) == "" {
			return s.remind(ctx, rec, now, &st)
		}
		changed := false
		final, err := s.storeMutate(ctx, rec.ID, "", func(r *record.Record) error {
			var err error
			changed, err = r.ApplyDue(now, s.o.ClaimTimeout)
			return err
		})
		if err != nil {
			return err
		}
		if changed {
			switch final.Status {
			case record.Expired:
				st.Expired++
			case record.Failed:
				st.Failed++
			}
			s.log.Info("approval event", zap.String("event", string(final.Status)), zap.String("request_id", final.ID),
				zap.String("actor", record.SystemActor), zap.String("requester", final.Requester.Subject),
				zap.String("policy", final.Policy), zap.String("resource", final.Resource), zap.String("by", "sweeper"))
		}
		return nil
	})
	if err != nil {
		return st, err
	}
	cutoff := now.Add(-s.o.Retention)
	err = s.o.Store.EachCreatedBefore(ctx, cutoff, func(rec *record.Record, rev int64) error {
		if !rec.Status.Terminal() || !rec.UpdatedAt.Before(cutoff) {
			return nil
		}
		removed, err := s.o.Store.Remove(ctx, rec, rev)
		if removed {
			st.Removed++
		}
		return err
	})
	if err != nil {
		return st, err
	}
	st.AuditPruned, err = s.o.Store.PruneAudit(ctx, now.Add(-s.o.AuditRetention))
	return st, err
}

// remind raises the expiring event of a request inside the reminder lead
// time, once per status.
func (s *Service) remind(ctx context.Context, rec *record.Record, now time.Time, st *SweepStats) error {
	if s.o.ReminderLead < 0 || rec.Status == record.Completing || now.Before(rec.ExpiresAt.Add(-s.o.ReminderLead)) {
		return nil
	}
	reminded := false
	_, err := s.storeMutate(ctx, rec.ID, "", func(r *record.Record) error {
		reminded = r.Status == rec.Status && r.Remind(now)
		return nil
	})
	if reminded {
		st.Reminded++
	}
	return err
}

// StartPolicyWatch loads the runtime policies from the store (waiting up
// to wait for it) and keeps them current from then on. The returned
// function stops it.
func (s *Service) StartPolicyWatch(wait time.Duration) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	lctx, lcancel := context.WithTimeout(ctx, wait)
	if _, err := s.loadRuntime(lctx); err != nil {
		s.log.Warn("runtime policies not loaded yet; judged calls answer 503 until they are", zap.Error(err))
	}
	lcancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.watchRuntime(ctx)
	}()
	return func() {
		cancel()
		<-done
	}
}

// StartSweeper runs Sweep every SweepInterval while this gateway is the
// elected sweeper: one sweeps at a time (the mod-revision fence still
// guards each change). The returned function stops it and waits.
func (s *Service) StartSweeper() (stop func()) {
	return s.runElected("sweeper", &s.sweeping, func(ctx context.Context) error {
		tick := time.NewTicker(s.o.SweepInterval)
		defer tick.Stop()
		for {
			st, err := s.Sweep(ctx)
			if err != nil && ctx.Err() == nil {
				s.log.Warn("sweep", zap.Error(err))
			} else if st != (SweepStats{}) {
				s.log.Info("sweep", zap.Int("expired", st.Expired), zap.Int("failed", st.Failed), zap.Int("reminded", st.Reminded),
					zap.Int("removed", st.Removed), zap.Int64("audit_pruned", st.AuditPruned))
			}
			select {
			case <-ctx.Done():
				return nil
			case <-tick.C:
			}
		}
	})
}
