package approvals

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/approval-gateway/gateway/module/auditchain"
	"github.com/approval-gateway/gateway/module/identity"
	"go.uber.org/zap"
)

// The tamper-evident audit log: the store links every event into one
// chain as it writes it (package auditchain); here the chain's head is
// signed at intervals (checkpoints, with the attestation keys), pruning
// leaves a signed anchor, and the log is verified and exported.

// DefaultCheckpointInterval is how often the chain's head is signed.
const DefaultCheckpointInterval = time.Hour

// checkpointRole is the name of the checkpoint signer's election.
const checkpointRole = "audit-checkpoints"

// sequencerWindow is how far out of seq order events may be read (the
// store keeps them by time; concurrent writers commit out of time order).
const sequencerWindow = 4096

// Checkpoint signs the chain's head, unless a checkpoint already vouches
// for it, and returns its seq (0: the log is empty).
func (s *Service) Checkpoint(ctx context.Context) (int64, error) {
	head, err := s.store.ChainHead(ctx)
	if err != nil || head.Seq == 0 {
		return 0, err
	}
	latest, err := s.store.LatestCheckpointSeq(ctx)
	if err != nil || latest >= head.Seq {
		return latest, err
	}
	return head.Seq, s.signCheckpoint(ctx, head.Seq, head.Hash, false)
}

// signCheckpoint signs and stores a checkpoint of the chain at seq (an
// anchor: the log's start after pruning). Its JWS is logged too, so that a
// copy lives outside the store, where whoever can write etcd cannot reach.
func (s *Service) signCheckpoint(ctx context.Context, seq int64, hash string, anchor bool) error {
	set, err := s.keys.current(ctx)
	if err != nil {
		return err
	}
	tok, err := set.SignCheckpoint(s.Attestation.Issuer, seq, hash, anchor, s.clock())
	if err != nil {
		return err
	}
	if err := s.store.PutCheckpoint(ctx, seq, tok); err != nil {
		return err
	}
	s.log.Info("audit checkpoint", zap.Int64("seq", seq), zap.String("hash", hash), zap.Bool("anchor", anchor), zap.String("jws", tok))
	return nil
}

// signAnchor is signCheckpoint for pruning's anchor.
func (s *Service) signAnchor(ctx context.Context, seq int64, hash string) error {
	return s.signCheckpoint(ctx, seq, hash, true)
}

// RunCheckpoints signs the chain's head every CheckpointInterval while
// this gateway is the elected signer, until ctx ends.
func (s *Service) RunCheckpoints(ctx context.Context) {
	s.store.RunElected(ctx, checkpointRole, func(ctx context.Context) error {
		tick := time.NewTicker(s.CheckpointInterval)
		defer tick.Stop()
		for {
			if _, err := s.Checkpoint(ctx); err != nil && ctx.Err() == nil {
				s.log.Warn("signing an audit checkpoint", zap.Error(err))
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
	})
}

// verifyAudit checks the stored log (admins): every event in its place,
// unedited, none missing up to the chain's head, each stored under its own
// id, and every signed checkpoint.
func (s *Service) verifyAudit(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "the audit log is for members of the admin groups"))
		return
	}
	res, err := s.VerifyAudit(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

// VerifyAudit verifies the stored audit log.
func (s *Service) VerifyAudit(ctx context.Context) (auditchain.Result, error) {
	set, err := s.keys.current(ctx)
	if err != nil {
		return auditchain.Result{}, err
	}
	snap, err := s.store.Snapshot(ctx)
	if err != nil {
		return auditchain.Result{}, err
	}
	cps, bad := auditchain.Checkpoints(snap.Checkpoints, set.Published(s.clock(), true).Public())
	if bad != nil {
		return auditchain.Result{Checkpoints: len(snap.Checkpoints), FirstBad: bad}, nil
	}
	head := snap.Head
	v := auditchain.NewVerifier(cps)
	q := auditchain.NewSequencer(sequencerWindow, v.Event)
	var moved *auditchain.Problem
	err = s.store.EachAuditEventAt(ctx, snap.Rev, func(id string, raw []byte) bool {
		var e struct {
			ID  string `json:"id"`
			Seq int64  `json:"seq"`
		}
		if json.Unmarshal(raw, &e) == nil && e.ID != id && (moved == nil || e.Seq < moved.Seq) {
			moved = &auditchain.Problem{Seq: e.Seq, Reason: "stored under another event's id (moved): the log's order was changed"}
		}
		return q.Push(raw)
	})
	if err != nil {
		return auditchain.Result{}, err
	}
	q.Flush()
	res := v.Finish(&head)
	if moved != nil && (res.FirstBad == nil || moved.Seq <= res.FirstBad.Seq) {
		res.OK, res.FirstBad = false, moved
	}
	return res, nil
}

// exportAudit streams the log (admins) as JSON lines: the signed
// checkpoints, then every event in seq order, as stored.
func (s *Service) exportAudit(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	if !s.isAdmin(who) {
		writeError(w, fail(http.StatusForbidden, CodeForbidden, "the audit log is for members of the admin groups"))
		return
	}
	snap, err := s.store.Snapshot(r.Context())
	if err != nil {
		writeError(w, err)
		return
	}
	w.Header().Set("Content-Type", "application/x-ndjson")
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(w)
	for _, t := range snap.Checkpoints {
		_ = enc.Encode(auditchain.CheckpointLine{Checkpoint: t})
	}
	q := auditchain.NewSequencer(sequencerWindow, func(raw []byte) bool {
		if _, err := w.Write(raw); err != nil {
			return false
		}
		_, err := w.Write([]byte{'\n'})
		return err == nil
	})
	if err := s.store.EachAuditEventAt(r.Context(), snap.Rev, func(_ string, raw []byte) bool { return q.Push(raw) }); err != nil {
		// The answer has started: cut it, so that the export is seen to be
		// incomplete (its end is not verifiable as whole).
		s.log.Warn("exporting the audit log", zap.Error(err))
		panic(http.ErrAbortHandler)
	}
	q.Flush()
}
