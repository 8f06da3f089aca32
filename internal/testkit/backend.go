package testkit

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Call is one call that reached a Backend.
type Call struct {
	Method, Path, Query string
	// URI is the request target exactly as it arrived.
	URI    string
	Header http.Header
	Body   string
}

// Backend is a real HTTP server that records the calls reaching it and
// answers each with {"done": "METHOD PATH"}: 201
// for a POST, 200 otherwise.
type Backend struct {
	mu    sync.Mutex
	calls []Call
	*httptest.Server
}

// NewBackend starts a Backend, closed when the test ends.
func NewBackend(t testing.TB) *Backend {
	b := &Backend{}
	b.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		b.mu.Lock()
		b.calls = append(b.calls, Call{r.Method, r.URL.Path, r.URL.RawQuery, r.RequestURI, r.Header.Clone(), string(body)})
		b.mu.Unlock()
		w.Header().Set("X-Backend", "example")
		w.Header().Set("Content-Type", "application/json")
		status := http.StatusOK
		if r.Method == http.MethodPost {
			status = http.StatusCreated
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, `{"done":"`+r.Method+" "+r.URL.Path+`"}`)
	}))
	t.Cleanup(b.Close)
	return b
}

// Calls returns the calls so far.
func (b *Backend) Calls() []Call {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]Call(nil), b.calls...)
}

// Mutating returns the calls other than GET.
func (b *Backend) Mutating() []Call {
	var out []Call
	for _, c := range b.Calls() {
		if c.Method != http.MethodGet {
			out = append(out, c)
		}
	}
	return out
}

// Keyed counts the calls by their Idempotency-Key.
func (b *Backend) Keyed(key string) int {
	n := 0
	for _, c := range b.Calls() {
		if c.Header.Get("Idempotency-Key") == key {
			n++
		}
	}
	return n
}

// Clock is a settable clock, for the core's injected clock.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// NewClock returns a clock standing at now.
func NewClock(now time.Time) *Clock { return &Clock{now: now} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }

// Add moves the clock on by d.
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.now = c.now.Add(d) }
