package etcdkit

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// Metric reads one of the in-process etcd's own metrics (a counter or a
// gauge, such as etcd_mvcc_range_total or
// etcd_debugging_mvcc_watcher_total), summed over every etcd the test
// process runs.
func Metric(t testing.TB, name string) float64 {
	t.Helper()
	mfs, err := prometheus.DefaultGatherer.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var sum float64
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				sum += c.GetValue()
			} else {
				sum += m.GetGauge().GetValue()
			}
		}
		return sum
	}
	t.Fatalf("etcd's %s is not registered", name)
	return 0
}
