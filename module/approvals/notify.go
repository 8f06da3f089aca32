package approvals

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
	"go.uber.org/zap"
)

// Webhook is a notification target, configured per gateway.
type Webhook struct {
	URL string
	// Secret signs each delivery (Approval-Signature); empty: unsigned.
	Secret string
	// Events are the types sent; empty: all.
	Events []string
	// Format is "cloudevents" (default) or "slack".
	Format string
	// Groups routes approver events (parked, bypassed, expiring before
	// approval) of requests that need one of these groups to this target.
	// Requesters routes requester events (approved, rejected, expired,
	// completed, failed, expiring after approval) of these subjects' requests.
	// With neither, every event goes to the target.
	Groups     []string
	Requesters []string
}

// wants reports whether target t takes event e of type typ.
func (t Webhook) wants(typ string, e record.AuditEvent, exact bool) bool {
	if len(t.Events) > 0 && !slices.Contains(t.Events, typ) {
		return false
	}
	if len(t.Groups) == 0 && len(t.Requesters) == 0 {
		return true
	}
	if record.ForApprovers(typ, e.To) {
		return slices.ContainsFunc(e.Groups, func(g string) bool { return slices.Contains(t.Groups, g) })
	}
	requester := record.Principal{Subject: e.Requester, CaseSensitive: exact}
	return slices.ContainsFunc(t.Requesters, requester.Is)
}

// SignatureHeader carries a delivery's signature: t=<unix seconds>,v1=<hex
// HMAC-SHA256(secret, "<t>.<raw body>")>.
const SignatureHeader = "Approval-Signature"

// Sign computes the signature header value of body at t.
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts + "."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a signature header against body and secret,
// refusing timestamps further than tolerance from now (replays).
func VerifySignature(secret, header string, body []byte, now time.Time, tolerance time.Duration) error {
	var ts int64
	var sig string
	for _, part := range strings.Split(header, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(part), "=")
		switch k {
		case "t":
			ts, _ = strconv.ParseInt(v, 10, 64)
		case "v1":
			sig = v
		}
	}
	if ts == 0 || sig == "" {
		return errors.New("malformed signature header")
	}
	t := time.Unix(ts, 0)
	if d := now.Sub(t); d > tolerance || d < -tolerance {
		return errors.New("signature timestamp outside the tolerance")
	}
	want := Sign(secret, t, body)
	if !hmac.Equal([]byte(want[strings.Index(want, "v1=")+3:]), []byte(sig)) {
		return errors.New("signature mismatch")
	}
	return nil
}

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

// notifier delivers events to the webhooks: at least once, in order per
// target, by the one gateway elected among those sharing the store.
type notifier struct {
	s       *Service
	client  *http.Client
	source  string
	base    time.Duration // first retry delay
	maxTry  int
	targets []Webhook
}

func targetKey(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// StartNotifier delivers events to the configured webhooks while this
// gateway is the elected notifier. The returned function stops it.
func (s *Service) StartNotifier() (stop func()) {
	if len(s.o.Webhooks) == 0 {
		return func() {}
	}
	n := &notifier{s: s, targets: s.o.Webhooks, source: s.o.EventSource, base: s.o.RetryBase, maxTry: s.o.MaxDeliveryAttempts,
		client: &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // targets come only from configuration: no redirects
		}}}
	return s.runElected("notifier", &s.notifying, n.deliverAll)
}

// deliverAll delivers to every target until ctx ends or one fails.
func (n *notifier) deliverAll(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errs := make(chan error, len(n.targets))
	for _, t := range n.targets {
		go func() { errs <- n.deliverTo(ctx, t) }()
	}
	var first error
	for range n.targets {
		if err := <-errs; err != nil && first == nil {
			first = err
			cancel()
		}
	}
	return first
}

// deliverTo follows the audit log from the target's saved cursor.
func (n *notifier) deliverTo(ctx context.Context, t Webhook) error {
	key := targetKey(t.URL)
	for ctx.Err() == nil {
		cur, err := n.s.o.Store.NotifyCursor(ctx, key)
		if err != nil {
			return err
		}
		err = n.s.o.Store.WatchAudit(ctx, cur, func(c store.AuditCursor, e record.AuditEvent) error {
			typ := record.EventType(e)
			if typ != "" && t.wants(typ, e, n.s.o.CaseSensitiveSubjects) {
				n.deliver(ctx, t, key, c, e)
			}
			if ctx.Err() != nil {
				return ctx.Err() // cut mid-delivery: the next leader sends it again
			}
			return n.s.o.Store.SetNotifyCursor(ctx, key, c)
		})
		if errors.Is(err, store.ErrCompacted) {
			n.s.log.Error("webhook fell behind compaction; events were skipped", zap.String("target", t.URL))
			rev, rerr := n.s.o.Store.Revision(ctx)
			if rerr != nil {
				return rerr
			}
			if err := n.s.o.Store.SetNotifyCursor(ctx, key, store.AuditCursor{Rev: rev + 1, Index: -1}); err != nil {
				return err
			}
			continue
		}
		if err != nil && ctx.Err() == nil {
			return err
		}
	}
	return nil
}

// deliver sends one event, retrying with exponential backoff, and keeps the
// log of its attempts.
func (n *notifier) deliver(ctx context.Context, t Webhook, key string, c store.AuditCursor, e record.AuditEvent) {
	body, typ, err := n.body(ctx, t, c, e)
	if err != nil {
		n.s.log.Error("building a webhook body", zap.Error(err))
		return
	}
	d := Delivery{EventID: c.String(), Type: typ, RequestID: e.RequestID, Target: t.URL}
	delay := n.base
	for attempt := 1; attempt <= n.maxTry && ctx.Err() == nil; attempt++ {
		a := n.post(ctx, t, body)
		d.Attempts = append(d.Attempts, a)
		d.Delivered = a.Status >= 200 && a.Status < 300
		n.s.o.Metrics.Delivered(key, d.Delivered)
		if err := n.s.o.Store.LogDelivery(ctx, key, c, d); err != nil {
			n.s.log.Warn("logging a webhook delivery", zap.Error(err))
		}
		if d.Delivered {
			return
		}
		n.s.log.Warn("webhook delivery failed", zap.String("target", t.URL), zap.String("event_id", d.EventID),
			zap.Int("attempt", attempt), zap.Int("status", a.Status), zap.String("error", a.Error))
		if attempt < n.maxTry {
			select {
			case <-ctx.Done():
			case <-time.After(delay):
			}
			delay = min(2*delay, 10*time.Minute)
		}
	}
	if !d.Delivered {
		n.s.log.Error("webhook delivery given up", zap.String("target", t.URL), zap.String("event_id", d.EventID))
	}
}

func (n *notifier) post(ctx context.Context, t Webhook, body []byte) Attempt {
	now := time.Now()
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

// body builds the delivery: a CloudEvents 1.0 structured event, or a Slack
// message.
func (n *notifier) body(ctx context.Context, t Webhook, c store.AuditCursor, e record.AuditEvent) ([]byte, string, error) {
	ev := n.s.newEvent(c, e, n.s.o.PublicURL)
	var rec *record.Record
	if e.RequestID != "" && ev.Type != record.EventPolicyChanged {
		r, _, err := n.s.o.Store.Get(ctx, e.RequestID)
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
