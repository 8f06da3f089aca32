package store

import (
	"fmt"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// A subject seen with many groups (more than a transaction holds) is noted
// in each, once a day; OtherMembers leaves the subject out.
func TestSeenMembers(t *testing.T) {
	s := newStore(t)
	var groups []string
	for i := range 300 {
		groups = append(groups, fmt.Sprintf("g%03d", i))
	}
	now := time.Now()
	s.SeenMember("Bob", groups, now)
	testkit.WaitFor(t, func() bool {
		resp, err := s.cli.Get(ctx, s.prefix+"members/", clientv3.WithPrefix(), clientv3.WithCountOnly())
		return err == nil && resp.Count == 300
	})
	s.SeenMember("carol", groups[:1], now)
	testkit.WaitFor(t, func() bool { n, err := s.OtherMembers(ctx, "g000", "nobody", 5); return err == nil && n == 2 })
	if n, err := s.OtherMembers(ctx, "g000", "BOB", 5); err != nil || n != 1 {
		t.Fatalf("besides bob: %d %v", n, err)
	}
}
