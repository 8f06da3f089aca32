// Package browserkit drives a real headless Chromium for the browser
// tests: a browser per person (its own profile, so its own cookies), steps
// bounded in time that show the page when they fail, text and screenshots.
// It is a package of its own so that only the browser tests build
// chromedp.
package browserkit

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/approval-gateway/gateway/internal/testkit"
	"github.com/chromedp/chromedp"
)

// Browser is one person's browser.
type Browser struct {
	t   testing.TB
	ctx context.Context
}

// Chromium returns the browser program: missing, it skips the test
// locally and fails it in CI.
func Chromium(t testing.TB) string { return testkit.Tool(t, "chromium") }

// Start starts a browser with a profile of its own, closed when the test
// ends.
func Start(t testing.TB, chromium string) *Browser {
	t.Helper()
	// Chromium's helper processes may still write to the profile after the
	// browser exits: remove it best-effort, not as a t.TempDir.
	profile, err := os.MkdirTemp("", "approval-chromium-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		for range 10 {
			if os.RemoveAll(profile) == nil {
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	alloc, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium), chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.Flag("disable-quic", true), chromedp.WindowSize(1280, 900),
		chromedp.UserDataDir(profile))
	t.Cleanup(cancel)
	ctx, cancelTab := chromedp.NewContext(alloc)
	t.Cleanup(cancelTab)
	// The first Run starts the browser; its context must outlive the test's
	// steps, whose timeouts would otherwise close it.
	if err := chromedp.Run(ctx); err != nil {
		t.Fatalf("starting chromium: %v", err)
	}
	return &Browser{t: t, ctx: ctx}
}

// Run runs actions within 30 seconds; on failure the test fails with the
// page's address and (the start of) its HTML.
func (b *Browser) Run(actions ...chromedp.Action) {
	b.t.Helper()
	tctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Run(tctx, actions...); err != nil {
		var loc, page string
		dctx, dcancel := context.WithTimeout(b.ctx, 5*time.Second)
		defer dcancel()
		_ = chromedp.Run(dctx, chromedp.Location(&loc), chromedp.OuterHTML("html", &page))
		if len(page) > 3000 {
			page = page[:3000]
		}
		b.t.Fatalf("%v\nat %s:\n%s", err, loc, page)
	}
}

// Try runs actions within 30 seconds and returns their error.
func (b *Browser) Try(actions ...chromedp.Action) error {
	tctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	return chromedp.Run(tctx, actions...)
}

// Text is the visible text of the first node sel matches.
func (b *Browser) Text(sel string) string {
	b.t.Helper()
	var s string
	b.Run(chromedp.Text(sel, &s, chromedp.NodeVisible))
	return s
}

// Location is the page's address.
func (b *Browser) Location() string {
	b.t.Helper()
	var loc string
	b.Run(chromedp.Location(&loc))
	return loc
}

// Screenshot saves the whole page as dir/name (PNG).
func (b *Browser) Screenshot(dir, name string) {
	b.t.Helper()
	var png []byte
	b.Run(chromedp.FullScreenshot(&png, 100))
	if err := os.WriteFile(filepath.Join(dir, name), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// Context is the browser's context, for chromedp calls of one's own.
func (b *Browser) Context() context.Context { return b.ctx }

// ScreenshotDir is where a test's screenshots go: SCREENSHOT_DIR, or the
// test's output directory (go test -artifacts -outputdir DIR).
func ScreenshotDir(t *testing.T) string {
	if d := os.Getenv("SCREENSHOT_DIR"); d != "" {
		return d
	}
	return t.ArtifactDir()
}
