package policy

import (
	"context"
	"io/fs"
	"path/filepath"
	"slices"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
	"go.uber.org/zap"
)

// Status is what the health endpoint shows of the policies.
type Status struct {
	LoadedAt time.Time `json:"loaded_at"`
	Files    []string  `json:"files"`
	Runtime  []string  `json:"runtime,omitempty"`
	// Error is the last failed reload, which did not replace the policy in
	// force; empty once a reload succeeds.
	Error   string    `json:"error,omitempty"`
	ErrorAt time.Time `json:"error_at,omitzero"`
}

// Reloader keeps an Engine's policy current: it rebuilds it from the
// directory and the runtime modules when either changes. A rebuild that
// fails never replaces the policy in force.
type Reloader struct {
	engine *Engine
	dir    string
	query  string
	log    *zap.Logger

	mu     sync.Mutex // serialises rebuilds; guards extra and status
	extra  []Module
	status Status
}

// NewReloader loads dir (which must succeed) and returns a Reloader.
func NewReloader(ctx context.Context, dir, query string, extra []Module, logger *zap.Logger) (*Reloader, error) {
	if logger == nil {
		logger = zap.NewNop()
	}
	p, err := LoadWith(ctx, dir, query, extra, logger)
	if err != nil {
		return nil, err
	}
	r := &Reloader{engine: NewEngine(p), dir: dir, query: query, log: logger, extra: extra}
	r.status = Status{LoadedAt: p.LoadedAt, Files: p.Files, Runtime: names(extra)}
	return r, nil
}

// Engine returns the engine the Reloader keeps current.
func (r *Reloader) Engine() *Engine { return r.engine }

// Status returns the state of the policies.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.status
}

// Reload rebuilds the policy from the directory and the runtime modules.
// On error the policy in force stays, and the error is logged and kept in
// the status.
func (r *Reloader) Reload(ctx context.Context) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rebuild(ctx, r.extra)
}

// SetRuntime replaces the runtime modules and rebuilds.
func (r *Reloader) SetRuntime(ctx context.Context, mods []Module) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.rebuild(ctx, mods)
}

// Check compiles the directory with mods in place of the runtime modules,
// without putting the result in force: the validation of a proposed change.
func (r *Reloader) Check(ctx context.Context, mods []Module) (*Policy, error) {
	return LoadWith(ctx, r.dir, r.query, mods, zap.NewNop())
}

// Runtime returns the runtime modules in force.
func (r *Reloader) Runtime() []Module {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.extra)
}

func (r *Reloader) rebuild(ctx context.Context, mods []Module) error {
	p, err := LoadWith(ctx, r.dir, r.query, mods, r.log)
	if err != nil {
		r.status.Error, r.status.ErrorAt = err.Error(), time.Now()
		r.log.Error("policy reload failed; the previous policies stay in force", zap.Error(err))
		return err
	}
	r.extra = mods
	r.engine.Swap(p)
	r.status = Status{LoadedAt: p.LoadedAt, Files: p.Files, Runtime: names(mods)}
	r.log.Info("policies reloaded", zap.Strings("files", p.Files))
	return nil
}

func names(mods []Module) []string {
	var out []string
	for _, m := range mods {
		out = append(out, m.Name)
	}
	return out
}

// Watch reloads when a file under the directory changes, after debounce of
// quiet (editors write in several steps). It returns when ctx ends.
func (r *Reloader) Watch(ctx context.Context, debounce time.Duration) error {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return err
	}
	defer w.Close()
	addTree := func(root string) {
		_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				if err := w.Add(p); err != nil {
					r.log.Warn("watching policy directory", zap.String("dir", p), zap.Error(err))
				}
			}
			return nil
		})
	}
	addTree(r.dir)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case ev, ok := <-w.Events:
			if !ok {
				return nil
			}
			if ev.Has(fsnotify.Create) {
				addTree(ev.Name) // a new subdirectory
			}
			timer.Reset(debounce)
		case err, ok := <-w.Errors:
			if !ok {
				return nil
			}
			r.log.Warn("policy file watch", zap.Error(err))
		case <-timer.C:
			_ = r.Reload(ctx)
		}
	}
}
