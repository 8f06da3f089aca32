package notify

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
)

// body builds the delivery: a CloudEvents 1.0 structured event, or a Slack
// message.
func (n *Notifier) body(ctx context.Context, t Webhook, c store.AuditCursor, e record.AuditEvent) ([]byte, string, error) {
	ev := record.NewNotification(c.String(), e, n.links+"/requests/"+e.RequestID)
	var rec *record.Record
	if e.RequestID != "" && ev.Type != record.EventPolicyChanged {
		r, _, err := n.store.Get(ctx, e.RequestID)
		if err == nil {
			rec = r
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, "", err
		}
	}
	if t.Format == "slack" {
		b, err := json.Marshal(map[string]string{"text": slackText(ev, rec)})
		return b, ev.Type, err
	}
	b, err := json.Marshal(map[string]any{
		"specversion": "1.0", "id": ev.ID, "source": n.source, "type": ev.Type, "time": ev.Time.UTC().Format(time.RFC3339Nano),
		"subject": ev.RequestID, "datacontenttype": "application/json",
		"data": map[string]any{"request": rec, "event": ev},
	})
	return b, ev.Type, err
}

// slackText is a readable message with the justification and a link to the
// request page; never an approve button that skips login.
func slackText(ev record.Notification, rec *record.Record) string {
	verb := strings.TrimPrefix(ev.Type, "approval.request.")
	if ev.Type == record.EventPolicyChanged {
		return fmt.Sprintf("Access policy changed: %s (%s)", ev.Resource, ev.Notes)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Request %s by %s: ", verb, ev.Actor)
	if rec != nil {
		fmt.Fprintf(&b, "%s %s (policy %s)\nRequested by %s: %q", rec.Operation.Method, rec.Operation.Target(), rec.Policy, rec.Requester.Subject, rec.Justification)
	}
	if ev.Notes != "" && ev.Type != record.EventParked {
		fmt.Fprintf(&b, "\nNotes: %q", ev.Notes)
	}
	fmt.Fprintf(&b, "\n<%s|Open the request>", ev.Link)
	return b.String()
}
