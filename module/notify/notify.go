// Package notify delivers the gateway's events to webhooks: CloudEvents
// 1.0 or Slack messages, signed, at least once and in order per target, by
// the one gateway elected among those sharing the store, with exponential
// backoff and a delivery log in the store. It reads the audit log through
// the store and knows nothing of the request flow.
package notify

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"slices"
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

// wants reports whether target t takes event e of type typ. Requesters are
// compared exactly as issued: routing a request's events to a target is
// a grant to read them.
func (t Webhook) wants(typ string, e record.AuditEvent) bool {
	if len(t.Events) > 0 && !slices.Contains(t.Events, typ) {
		return false
	}
	if len(t.Groups) == 0 && len(t.Requesters) == 0 {
		return true
	}
	if record.ForApprovers(typ, e.To) {
		return slices.ContainsFunc(e.Groups, func(g string) bool { return slices.Contains(t.Groups, g) })
	}
	return slices.Contains(t.Requesters, e.Requester)
}

// Backoff is how a failed delivery is retried: first after Base, then
// after twice the last wait, at most Max, for Attempts tries in all.
type Backoff struct {
	Base     time.Duration
	Max      time.Duration
	Attempts int
}

// DefaultBackoff retries from a second, up to ten minutes apart, twelve
// tries in all.
var DefaultBackoff = Backoff{Base: time.Second, Max: 10 * time.Minute, Attempts: 12}

// Options configures a Notifier.
type Options struct {
	Store   *store.Store
	Targets []Webhook
	// Source is the CloudEvents source, such as "approval-gateway/.approvals".
	Source string
	// Links is the base of the links to requests: the public URL and the
	// prefix ("https://admin.example.com/.approvals").
	Links string
	// Backoff retries failed deliveries. Default DefaultBackoff; a zero
	// field takes its default.
	Backoff Backoff
	// Metrics, when set, counts deliveries.
	Metrics interface{ Delivered(target string, ok bool) }
	// Client posts the deliveries. Default: 10s timeout, no redirects
	// followed (targets come only from the configuration).
	Client *http.Client
	Clock  func() time.Time
	Logger *zap.Logger
}

// Notifier delivers the events of the audit log to the targets.
type Notifier struct {
	store   *store.Store
	targets []Webhook
	source  string
	links   string
	backoff Backoff
	metrics interface{ Delivered(target string, ok bool) }
	client  *http.Client
	clock   func() time.Time
	log     *zap.Logger
}

// New returns a Notifier for o.
func New(o Options) *Notifier {
	b := o.Backoff
	if b.Base <= 0 {
		b.Base = DefaultBackoff.Base
	}
	if b.Max <= 0 {
		b.Max = DefaultBackoff.Max
	}
	if b.Attempts <= 0 {
		b.Attempts = DefaultBackoff.Attempts
	}
	n := &Notifier{store: o.Store, targets: o.Targets, source: o.Source, links: o.Links, backoff: b,
		metrics: o.Metrics, client: o.Client, clock: o.Clock, log: o.Logger}
	if n.client == nil {
		n.client = &http.Client{Timeout: 10 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		}}
	}
	if n.clock == nil {
		n.clock = time.Now
	}
	if n.log == nil {
		n.log = zap.NewNop()
	}
	if n.metrics == nil {
		n.metrics = noMetrics{}
	}
	return n
}

type noMetrics struct{}

func (noMetrics) Delivered(string, bool) {}

// Role is the name of the notifier's election.
const Role = "notifier"

// Run delivers while this gateway is the elected notifier, until ctx
// ends. With no targets it does nothing.
func (n *Notifier) Run(ctx context.Context) {
	if len(n.targets) == 0 {
		return
	}
	n.store.RunElected(ctx, Role, func(ctx context.Context) error {
		n.log.Info("elected as the " + Role)
		return n.deliverAll(ctx)
	})
}

// deliverAll delivers to every target until ctx ends or one fails.
func (n *Notifier) deliverAll(ctx context.Context) error {
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

// TargetKey names a target in the store and the metrics: a hash of its
// URL, which may hold a token.
func TargetKey(url string) string {
	sum := sha256.Sum256([]byte(url))
	return hex.EncodeToString(sum[:8])
}

// deliverTo follows the audit log from the target's saved cursor.
func (n *Notifier) deliverTo(ctx context.Context, t Webhook) error {
	key := TargetKey(t.URL)
	for ctx.Err() == nil {
		cur, err := n.store.NotifyCursor(ctx, key)
		if err != nil {
			return err
		}
		err = n.store.WatchAudit(ctx, cur, func(c store.AuditCursor, e record.AuditEvent) error {
			typ := record.EventType(e)
			if typ != "" && t.wants(typ, e) {
				n.deliver(ctx, t, key, c, e)
			}
			if ctx.Err() != nil {
				return ctx.Err() // cut mid-delivery: the next leader sends it again
			}
			return n.store.SetNotifyCursor(ctx, key, c)
		})
		if errors.Is(err, store.ErrCompacted) {
			n.log.Error("webhook fell behind compaction; events were skipped", zap.String("target", t.URL))
			rev, rerr := n.store.Revision(ctx)
			if rerr != nil {
				return rerr
			}
			if err := n.store.SetNotifyCursor(ctx, key, store.AuditCursor{Rev: rev + 1, Index: -1}); err != nil {
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
