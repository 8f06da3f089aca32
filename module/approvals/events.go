package approvals

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/record"
	"github.com/approval-gateway/gateway/module/store"
)

func (s *Service) newEvent(cur store.AuditCursor, e record.AuditEvent, base string) record.Notification {
	return record.NewNotification(cur.String(), e, base+s.Prefix+"/requests/"+e.RequestID)
}

// mayseeEvent reports whether who may see an event: as for the request itself.
func (s *Service) mayseeEvent(who *identity.Identity, e record.AuditEvent) bool {
	if s.isAdmin(who) || s.principal(who).Is(e.Requester) {
		return true
	}
	for _, g := range e.Groups {
		if slices.Contains(who.Groups, g) {
			return true
		}
	}
	return false
}

// baseURL is the scheme and host of r, for links in events.
func baseURL(r *http.Request) string {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

// events streams the events the caller may see as server-sent events,
// resumable with Last-Event-ID; when the history asked for was compacted
// the stream says "reset" and the client re-lists.
func (s *Service) events(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	var after store.AuditCursor
	if last := r.Header.Get("Last-Event-ID"); last != "" {
		c, err := store.ParseAuditCursor(last)
		if err != nil {
			writeError(w, fail(http.StatusBadRequest, CodeBadRequest, err.Error()))
			return
		}
		after = c
	} else {
		rev, err := s.store.Revision(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		after = store.AuditCursor{Rev: rev + 1, Index: -1}
	}
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, "retry: 2000\n\n")
	if rc.Flush() != nil {
		return
	}
	base := baseURL(r)
	err := s.store.WatchAudit(r.Context(), after, func(cur store.AuditCursor, e record.AuditEvent) error {
		ev := s.newEvent(cur, e, base)
		if ev.Type == "" || !s.mayseeEvent(who, e) {
			return nil
		}
		b, _ := json.Marshal(ev)
		if _, err := fmt.Fprintf(w, "id: %s\nevent: %s\ndata: %s\n\n", ev.ID, ev.Type, b); err != nil {
			return err
		}
		return rc.Flush()
	})
	if errors.Is(err, store.ErrCompacted) {
		_, _ = fmt.Fprint(w, "event: reset\ndata: {\"reason\": \"the events after your Last-Event-ID are no longer kept: list the requests again\"}\n\n")
		_ = rc.Flush()
	}
}
