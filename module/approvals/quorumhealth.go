package approvals

import (
	"context"
	"fmt"

	"github.com/approval-gateway/gateway/module/record"
	"go.uber.org/zap"
)

// Quorum health: the gateways note which subjects they see holding each
// group in verified tokens (store.SeenMember, on every authenticated
// call); a park whose requirement asks more approvals of a group than
// members other than the requester have been seen in it says so in its
// record, as AWS multi-party approval reports a team's health: the
// request may never be approved.

// quorumWarnings are the warnings of a record about to be parked; a store
// that cannot be read gives none (the park goes on).
func (s *Service) quorumWarnings(ctx context.Context, rec *record.Record) []string {
	var out []string
	for _, q := range rec.Approvers {
		n, err := s.store.OtherMembers(ctx, q.Group, rec.Requester.Subject, q.Required)
		if err != nil {
			s.log.Warn("counting a group's members", zap.String("group", q.Group), zap.Error(err))
			continue
		}
		if n < q.Required {
			out = append(out, fmt.Sprintf("group %s must give %d approval(s), but %s been seen in it in the last 90 days besides the requester: this request may never be approved",
				q.Group, q.Required, members(n)))
		}
	}
	return out
}

func members(n int) string {
	switch n {
	case 0:
		return "no member has"
	case 1:
		return "only 1 member has"
	}
	return fmt.Sprintf("only %d members have", n)
}
