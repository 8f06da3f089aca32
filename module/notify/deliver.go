package notify

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// Delivery is the log of one event's delivery to one target.
type Delivery struct {
	EventID   string    `json:"event_id"`
	Type      string    `json:"type"`
	RequestID string    `json:"request_id"`
	Target    string    `json:"target"`
	Attempts  []Attempt `json:"attempts"`
	Delivered bool      `json:"delivered"`
}

// Attempt is one try of a delivery.
type Attempt struct {
	At     time.Time `json:"at"`
	Status int       `json:"status,omitempty"`
	Error  string    `json:"error,omitempty"`
}

// deliver sends one event, retrying with exponential backoff, and keeps the
// log of its attempts.
func (n *Notifier) deliver(ctx context.Context, t Webhook, key string, c store.AuditCursor, e record.AuditEvent) {
	body, typ, err := n.body(ctx, t, c, e)
	if err != nil {
		n.log.Error("building a webhook body", zap.Error(err))
		return
	}
	d := Delivery{EventID: c.String(), Type: typ, RequestID: e.RequestID, Target: t.URL}
	delay := n.backoff.Base
	for attempt := 1; attempt <= n.backoff.Attempts && ctx.Err() == nil; attempt++ {
		a := n.post(ctx, t, body)
		d.Attempts = append(d.Attempts, a)
		d.Delivered = a.Status >= 200 && a.Status < 300
		n.metrics.Delivered(key, d.Delivered)
		if err := n.store.LogDelivery(ctx, key, c, d); err != nil {
			n.log.Warn("logging a webhook delivery", zap.Error(err))
		}
		if d.Delivered {
			return
		}
		n.log.Warn("webhook delivery failed", zap.String("target", t.URL), zap.String("event_id", d.EventID),
			zap.Int("attempt", attempt), zap.Int("status", a.Status), zap.String("error", a.Error))
		if attempt < n.backoff.Attempts {
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, n.backoff.Max)
		}
	}
	if !d.Delivered {
		n.log.Error("webhook delivery given up", zap.String("target", t.URL), zap.String("event_id", d.EventID))
	}
}

// post makes one attempt.
func (n *Notifier) post(ctx context.Context, t Webhook, body []byte) Attempt {
	now := n.clock()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.URL, bytes.NewReader(body))
	if err != nil {
		return Attempt{At: now, Error: err.Error()}
	}
	if t.Format == "slack" {
		req.Header.Set("Content-Type", "application/json")
	} else {
		req.Header.Set("Content-Type", "application/cloudevents+json")
	}
	if t.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(t.Secret, now, body))
	}
	resp, err := n.client.Do(req)
	if err != nil {
		return Attempt{At: now, Error: err.Error()}
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	return Attempt{At: now, Status: resp.StatusCode}
}
