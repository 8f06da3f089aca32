// Package metrics holds the gateway's Prometheus metrics. The request flow
// and the webhook notifier report to it through small interfaces of their
// own, so neither imports Prometheus.
package metrics

import (
	"context"
	"errors"
	"time"

	"github.com/approval-gateway/gateway/module/record"
	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the gateway's Prometheus metrics, registered with Caddy's
// registry so they show at Caddy's metrics endpoint.
type Metrics struct {
	decisions    *prometheus.CounterVec
	transitions  *prometheus.CounterVec
	toApproval   prometheus.Histogram
	toCompletion prometheus.Histogram
	replays      *prometheus.CounterVec
	storeOps     *prometheus.HistogramVec
	storeErrors  *prometheus.CounterVec
	deliveries   *prometheus.CounterVec
}

// New creates the metrics and registers them (and a pending gauge
// read from the store at scrape time) with reg.
func New(reg prometheus.Registerer, pending func() float64) (*Metrics, error) {
	const ns = "approval"
	m := &Metrics{
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "decisions_total",
			Help: "Policy decisions on judged calls, by action and policy."}, []string{"action", "policy"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "requests_total",
			Help: "Requests reaching each status."}, []string{"status"}),
		toApproval: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "time_to_approval_seconds",
			Help: "Time from park to quorum.", Buckets: prometheus.ExponentialBuckets(1, 4, 12)}),
		toCompletion: prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: ns, Name: "time_to_completion_seconds",
			Help: "Time from quorum to the backend's answer.", Buckets: prometheus.ExponentialBuckets(1, 4, 12)}),
		replays: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "replays_total",
			Help: "Replays by outcome (completed, failed)."}, []string{"outcome"}),
		storeOps: prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: ns, Name: "store_operation_seconds",
			Help: "Latency of etcd operations.", Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14)}, []string{"op"}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "store_errors_total",
			Help: "Failed etcd operations."}, []string{"op"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: ns, Name: "webhook_deliveries_total",
			Help: "Webhook delivery attempts by target and outcome."}, []string{"target", "outcome"}),
	}
	collectors := []prometheus.Collector{m.decisions, m.transitions, m.toApproval, m.toCompletion, m.replays, m.storeOps, m.storeErrors, m.deliveries,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: ns, Name: "pending_requests",
			Help: "Requests needing approval, approved or completing, across all gateways."}, pending)}
	for _, c := range collectors {
		if err := reg.Register(c); err != nil {
			var already prometheus.AlreadyRegisteredError
			if !errors.As(err, &already) {
				return nil, err
			}
		}
	}
	return m, nil
}

// ObserveStore records one store operation (the store's Observe hook).
func (m *Metrics) ObserveStore(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	m.storeOps.WithLabelValues(op).Observe(d.Seconds())
	if err != nil && !errors.Is(err, context.Canceled) {
		m.storeErrors.WithLabelValues(op).Inc()
	}
}

// Decision counts a policy decision on a judged call.
func (m *Metrics) Decision(action, policy string) {
	if m != nil {
		m.decisions.WithLabelValues(action, policy).Inc()
	}
}

// Recorded counts a change of rec whose newest history events start at
// seen.
func (m *Metrics) Recorded(rec *record.Record, seen int) {
	if m == nil || rec == nil {
		return
	}
	for _, e := range rec.History[min(seen, len(rec.History)):] {
		if e.From == e.To && e.From != "" {
			continue
		}
		m.transitions.WithLabelValues(string(e.To)).Inc()
		switch e.To {
		case record.Approved:
			m.toApproval.Observe(e.At.Sub(rec.CreatedAt).Seconds())
		case record.Completed, record.Failed:
			m.replays.WithLabelValues(string(e.To)).Inc()
			if approvedAt, ok := statusTime(rec, record.Approved); ok {
				m.toCompletion.Observe(e.At.Sub(approvedAt).Seconds())
			}
		}
	}
}

func statusTime(rec *record.Record, st record.Status) (time.Time, bool) {
	for _, e := range rec.History {
		if e.To == st && e.From != st {
			return e.At, true
		}
	}
	return time.Time{}, false
}

// Delivered counts a webhook delivery attempt.
func (m *Metrics) Delivered(target string, ok bool) {
	if m == nil {
		return
	}
	outcome := "failed"
	if ok {
		outcome = "delivered"
	}
	m.deliveries.WithLabelValues(target, outcome).Inc()
}
