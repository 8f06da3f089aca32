package store

import (
	"context"
	"net/url"
	"slices"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Group members seen: for quorum health, the subjects the gateways have
// seen holding each group in a verified token. Each is written at most
// once a day per gateway, on a lease of 90 days (a new lease each day),
// so a subject not seen for 90 days leaves by itself: the keys are
// bounded by the people who use the gateway in a quarter.

// MemberTTL is how long a subject seen once counts as a group's member.
const MemberTTL = 90 * 24 * time.Hour

// memberRewrite is how often a gateway writes again a member it saw.
const memberRewrite = 24 * time.Hour

// maxMembersKnown bounds this gateway's memory of what it wrote.
const maxMembersKnown = 100_000

// members is this gateway's memory of the members it wrote, and its lease.
type members struct {
	mu      sync.Mutex
	written map[string]time.Time // group + "\x00" + subject (as spelt) → when
	lease   clientv3.LeaseID
	granted time.Time
	seen    map[string]seenMembers // group → its members as last read
	gen     int                    // counts the writes that made seen stale
}

func (s *Store) memberPrefix(group string) string {
	return s.prefix + "members/" + url.PathEscape(group) + "/"
}

// SeenMember notes that subject held groups in a verified token at now;
// what this gateway has not written in a day is written in the
// background (a lost write is tried again on the next sighting).
//
// It runs on every authenticated call: what was written is remembered by
// the subject as the token spells it, and the subject's key (one member
// for all its spellings) is made only for a write.
func (s *Store) SeenMember(subject string, groups []string, now time.Time) {
	var due []string
	s.members.mu.Lock()
	if s.members.written == nil || len(s.members.written) >= maxMembersKnown {
		s.members.written = map[string]time.Time{}
	}
	for _, g := range groups {
		k := g + "\x00" + subject
		if at, ok := s.members.written[k]; ok && now.Sub(at) < memberRewrite {
			continue
		}
		s.members.written[k] = now
		due = append(due, g)
	}
	s.members.mu.Unlock()
	if len(due) == 0 {
		return
	}
	go func() {
		if err := s.putMembers(s.subjectKey(subject), due, now); err != nil {
			// Tried again at a sighting a minute from now, not at each.
			s.members.mu.Lock()
			for _, g := range due {
				s.members.written[g+"\x00"+subject] = now.Add(time.Minute - memberRewrite)
			}
			s.members.mu.Unlock()
		}
	}()
}

// putMembers writes subject key as a member of groups, on today's lease.
func (s *Store) putMembers(key string, groups []string, now time.Time) error {
	ctx, cancel := s.ctx(context.Background())
	defer cancel()
	s.members.mu.Lock()
	lease, granted := s.members.lease, s.members.granted
	s.members.mu.Unlock()
	if lease == 0 || now.Sub(granted) >= memberRewrite {
		resp, err := s.cli.Grant(ctx, int64(MemberTTL/time.Second))
		if err != nil {
			return unavailable(err)
		}
		lease = resp.ID
		s.members.mu.Lock()
		s.members.lease, s.members.granted = lease, now
		s.members.mu.Unlock()
	}
	for chunk := range slices.Chunk(groups, 100) { // under etcd's 128 operations a transaction
		ops := make([]clientv3.Op, 0, len(chunk))
		for _, g := range chunk {
			ops = append(ops, clientv3.OpPut(s.memberPrefix(g)+url.PathEscape(key), now.UTC().Format(time.RFC3339), clientv3.WithLease(lease)))
		}
		if _, err := s.cli.Txn(ctx).Then(ops...).Commit(); err != nil {
			return unavailable(err)
		}
	}
	s.members.mu.Lock()
	for _, g := range groups {
		delete(s.members.seen, g) // read afresh at the next park
	}
	s.members.gen++
	s.members.mu.Unlock()
	return nil
}

// OtherMembers counts the subjects seen holding group in the last 90
// days besides subject, up to limit. What it read is kept for a while, so
// that parks do not each read the group.
func (s *Store) OtherMembers(ctx context.Context, group, subject string, limit int) (int, error) {
	const cacheFor, cacheUpTo = 30 * time.Second, 16
	s.members.mu.Lock()
	c, ok := s.members.seen[group]
	gen := s.members.gen
	s.members.mu.Unlock()
	if !ok || time.Since(c.at) > cacheFor || (len(c.keys) == c.asked && limit+1 > c.asked) {
		asked := max(limit+1, cacheUpTo)
		ctx, cancel := s.ctx(ctx)
		defer cancel()
		resp, err := s.cli.Get(ctx, s.memberPrefix(group), clientv3.WithPrefix(), clientv3.WithKeysOnly(), clientv3.WithLimit(int64(asked)))
		if err != nil {
			return 0, unavailable(err)
		}
		c = seenMembers{at: time.Now(), asked: asked}
		for _, kv := range resp.Kvs {
			c.keys = append(c.keys, string(kv.Key))
		}
		s.members.mu.Lock()
		if s.members.seen == nil || len(s.members.seen) >= maxMembersKnown {
			s.members.seen = map[string]seenMembers{}
		}
		if s.members.gen == gen { // no write of this gateway since the read began
			s.members.seen[group] = c
		}
		s.members.mu.Unlock()
	}
	self := s.memberPrefix(group) + url.PathEscape(s.subjectKey(subject))
	n := 0
	for _, k := range c.keys {
		if k != self {
			n++
		}
	}
	return min(n, limit), nil
}

// seenMembers is a group's members as last read: up to asked keys.
type seenMembers struct {
	at    time.Time
	asked int
	keys  []string
}
