package identity

import (
	"crypto/sha256"
	"sync"
	"time"
)

// tokenCache remembers verified tokens by their SHA-256 until they expire,
// so a token seen before skips the signature check. It holds no token
// itself. A nil cache caches nothing.
type tokenCache struct {
	mu      sync.Mutex
	max     int
	entries map[[32]byte]cached
}

type cached struct {
	id      *Identity
	expires time.Time
}

func newTokenCache(max int) *tokenCache {
	return &tokenCache{max: max, entries: make(map[[32]byte]cached, max)}
}

func (c *tokenCache) get(raw string, now time.Time) (*Identity, bool) {
	if c == nil {
		return nil, false
	}
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[k]
	if !ok {
		return nil, false
	}
	if !now.Before(e.expires) {
		delete(c.entries, k)
		return nil, false
	}
	return e.id, true
}

func (c *tokenCache) put(raw string, id *Identity, expires time.Time) {
	if c == nil {
		return
	}
	k := sha256.Sum256([]byte(raw))
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= c.max {
		// Full: drop expired entries, else an arbitrary tenth.
		now, n := time.Now(), 0
		for key, e := range c.entries {
			if !now.Before(e.expires) || n < c.max/10 {
				delete(c.entries, key)
				n++
			}
		}
	}
	c.entries[k] = cached{id: id, expires: expires}
}
