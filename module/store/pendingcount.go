package store

import "sync"

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
	mu      sync.Mutex
	known   map[string]pendingCount
	locking map[string]*requesterLock
}

// requesterLock is one requester's create lock, kept while anyone holds or
// waits for it.
type requesterLock struct {
	sync.Mutex
	users int
}

// lock serializes one requester's creates on this gateway; other
// requesters' go on in parallel.
func (p *pendingCounts) lock(sub string) (unlock func()) {
	p.mu.Lock()
	if p.locking == nil {
		p.locking = make(map[string]*requesterLock)
	}
	l := p.locking[sub]
	if l == nil {
		l = &requesterLock{}
		p.locking[sub] = l
	}
	l.users++
	p.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		p.mu.Lock()
		if l.users--; l.users == 0 {
			delete(p.locking, sub)
		}
		p.mu.Unlock()
	}
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
