package approvals

import (
	"context"
	"sync"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
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
	now := s.clock()
	err := s.eachPending(ctx, now, func(rec *record.Record) error {
		if rec.Due(now, s.ClaimTimeout) == "" {
			return s.remind(ctx, rec, now, &st)
		}
		changed := false
		final, err := s.storeMutate(ctx, rec.ID, "", func(r *record.Record) error {
			var err error
			changed, err = r.ApplyDue(now, s.ClaimTimeout)
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
	cutoff := now.Add(-s.Retention)
	err = s.store.EachCreatedBefore(ctx, cutoff, func(rec *record.Record, rev int64) error {
		if !rec.Status.Terminal() || !rec.UpdatedAt.Before(cutoff) {
			return nil
		}
		removed, err := s.store.Remove(ctx, rec, rev)
		if removed {
			st.Removed++
		}
		return err
	})
	if err != nil {
		return st, err
	}
	st.AuditPruned, err = s.store.PruneAudit(ctx, now.Add(-s.AuditRetention), s.signAnchor)
	return st, err
}

// eachPending calls fn with the open requests that have something due at
// now: an expiry, a claim timeout or a reminder. From the gateway's view
// of the open requests (once it reflects every write made before the
// sweep) it reads nothing: fn's fenced write reads only what is due.
// Without the view (not read yet, or lagging) it reads every pending
// request from the store.
func (s *Service) eachPending(ctx context.Context, now time.Time, fn func(*record.Record) error) error {
	open := s.store.Open()
	if !open.CaughtUp(ctx, 2*time.Second) {
		return s.store.EachPending(ctx, fn)
	}
	var due []*record.Record
	lead := max(0, s.ReminderLead)
	open.Each(func(r *store.OpenRequest) bool {
		if r.Status != record.Completing && now.Before(r.ExpiresAt().Add(-lead)) {
			return true // nothing due before the reminder lead
		}
		if rec := r.Record(); rec.Due(now, s.ClaimTimeout) != "" || s.reminderDue(rec, now) {
			due = append(due, rec)
		}
		return true
	})
	for _, rec := range due {
		if err := fn(rec); err != nil {
			return err
		}
	}
	return nil
}

// reminderDue reports whether rec is inside the reminder lead time and
// not yet reminded in its status.
func (s *Service) reminderDue(rec *record.Record, now time.Time) bool {
	if s.ReminderLead < 0 || rec.Status == record.Completing || now.Before(rec.ExpiresAt.Add(-s.ReminderLead)) {
		return false
	}
	for _, e := range rec.History {
		if e.Action == "reminder" && e.From == rec.Status {
			return false
		}
	}
	return true
}

// remind raises the expiring event of a request inside the reminder lead
// time, once per status.
func (s *Service) remind(ctx context.Context, rec *record.Record, now time.Time, st *SweepStats) error {
	if !s.reminderDue(rec, now) {
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

// RunPolicyWatch loads the runtime policies from the store, retrying
// until it can (judged calls answer 503 until then), and keeps them
// current until ctx ends.
func (s *Service) RunPolicyWatch(ctx context.Context) {
	s.watchRuntime(ctx)
}

// RunWatches keeps this gateway's two watches until ctx ends: its view of
// the open requests (store.OpenRequests: claims, live pages and the
// sweeper's search for what is due are served from it) and its audit feed
// (store.AuditFeed: every event stream is served from it).
func (s *Service) RunWatches(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { s.store.Open().Run(ctx) })
	wg.Go(func() { s.keys.run(ctx) })
	s.store.Feed().Run(ctx)
	wg.Wait()
}

// sweeperRole is the name of the sweeper's election.
const sweeperRole = "sweeper"

// RunSweeper runs Sweep every SweepInterval while this gateway is the
// elected sweeper, until ctx ends: one sweeps at a time (the mod-revision
// fence still guards each change).
func (s *Service) RunSweeper(ctx context.Context) {
	s.store.RunElected(ctx, sweeperRole, func(ctx context.Context) error {
		s.log.Info("elected as the " + sweeperRole)
		tick := time.NewTicker(s.SweepInterval)
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
