package approvalgateway

import (
	"bytes"
	"crypto/sha256"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"runtime"
	"strconv"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/caddykit"
	"github.com/approval-gateway/gateway/internal/testkit"
)

// TestLargeAllowedUploadStreams: when no policy reads bodies, an allowed
// call's body streams to the backend whatever its size: 50 MiB pass with
// the process's peak memory growing by less than 10 MiB, and reach the
// backend intact. When a policy reads bodies, the same upload is a 413.
func TestLargeAllowedUploadStreams(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("peak RSS is read from /proc")
	}
	const size = 50 << 20
	var got int64
	var sum []byte
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := sha256.New()
		got, _ = io.Copy(h, r.Body)
		sum = h.Sum(nil)
		w.WriteHeader(http.StatusCreated)
	}))
	t.Cleanup(backend.Close)

	start := func(rego string) string {
		g := newGateway(t)
		g.policies = testkit.WritePolicy(t, rego)
		caddykit.Load(t, g.base, caddykit.Site(g.port, "", g.block("")+"\n\treverse_proxy "+strings.TrimPrefix(backend.URL, "http://")))
		return g.base
	}
	upload := func(base string) int {
		req, _ := http.NewRequest("POST", base+"/uploads/app.pkg", io.LimitReader(zeros{}, size))
		req.ContentLength = size
		req.Header.Set("Authorization", "Bearer "+token(t, "alice"))
		req.Header.Set("Content-Type", "application/octet-stream")
		// The client waits for the gateway's go-ahead (sent once the body
		// is read), so a refusal from Content-Length is an answer, not a
		// reset connection.
		req.Header.Set("Expect", "100-continue")
		resp, err := testkit.NewClient(t, "").HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	base := start(`package approval

decision := {"action": "allow", "policy": "uploads"} if startswith(input.request.path, "/uploads/")
`)
	runtime.GC()
	before := rss(t, "VmRSS")
	if err := os.WriteFile("/proc/self/clear_refs", []byte("5"), 0); err != nil {
		t.Skipf("cannot reset the peak RSS: %v", err)
	}
	status := upload(base)
	peak := rss(t, "VmHWM")
	if status != http.StatusCreated || got != size {
		t.Fatalf("upload answered %d; the backend got %d bytes", status, got)
	}
	want := sha256.Sum256(make([]byte, size))
	if !bytes.Equal(sum, want[:]) {
		t.Fatal("the backend got other bytes than were sent")
	}
	t.Logf("a %d MiB upload raised the peak RSS by %.1f MiB", size>>20, float64(peak-before)/(1<<20))
	if peak-before >= 10<<20 {
		t.Fatalf("peak RSS grew by %d bytes: the body was buffered", peak-before)
	}

	base = start(`package approval

decision := {"action": "allow", "policy": "uploads"} if {
	startswith(input.request.path, "/uploads/")
	input.request.body_size >= 0
}
`)
	got = 0
	if status := upload(base); status != http.StatusRequestEntityTooLarge || got != 0 {
		t.Fatalf("with a policy reading bodies: %d, backend got %d bytes", status, got)
	}
}

// zeros reads as an endless run of zero bytes.
type zeros struct{}

func (zeros) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// rss reads a memory figure of this process from /proc/self/status, in
// bytes.
func rss(t *testing.T, field string) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatalf("no %s in /proc/self/status", field)
	return 0
}
