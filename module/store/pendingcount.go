package store

import (
	"hash/maphash"
	"sync"
)

// pendingCount is a requester's number of pending requests as of a store
// revision.
type pendingCount struct{ n, rev int64 }

// maxKnownRequesters bounds the hints kept; past it they start over.
const maxKnownRequesters = 10000

// pendingCounts holds this gateway's last known pending count of each
// requester. A count is only a hint: a create fenced on it fails when the
// requester's pending requests changed since, and learns the true count.
// An unknown requester's hint is zero pending as of revision 0: right for a
// requester with nothing pending, fenced out otherwise.
type pendingCounts struct {
	mu    sync.Mutex
	known map[string]pendingCount
	seed  maphash.Seed
	once  sync.Once
	locks [64]sync.Mutex
}

// lock serializes one requester's creates on this gateway (requesters
// share 64 locks).
func (p *pendingCounts) lock(sub string) (unlock func()) {
	p.once.Do(func() { p.seed = maphash.MakeSeed() })
	l := &p.locks[maphash.String(p.seed, sub)%uint64(len(p.locks))]
	l.Lock()
	return l.Unlock
}

func (p *pendingCounts) get(sub string) pendingCount {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.known[sub]
}

func (p *pendingCounts) put(sub string, c pendingCount) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.known == nil || len(p.known) >= maxKnownRequesters {
		p.known = make(map[string]pendingCount)
	}
	p.known[sub] = c
}
