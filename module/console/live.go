package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// live streams a server-sent event whenever a request the user may see
// changes (from the store's watch), so pages update without reload.
func (c *Console) live(w http.ResponseWriter, r *http.Request, v *visit) {
	sess, who := v.sess, v.who
	rc := http.NewResponseController(w)
	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
	_, _ = fmt.Fprint(w, ": live\n\n")
	if err := rc.Flush(); err != nil {
		return
	}
	me := c.flow.Principal(who)
	admin := c.flow.IsAdmin(who)
	// Every page shares the gateway's one watch of the requests; a page
	// that falls behind misses changes (it reloads anyway), so each costs
	// a bounded buffer.
	changed, stop := c.store.Open().Subscribe(16)
	defer stop()
	ctx := r.Context()
	ping := time.NewTicker(20 * time.Second)
	defer ping.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case rec := <-changed:
			if !rec.IsParty(me, admin) {
				continue
			}
			b, _ := json.Marshal(map[string]string{"id": rec.ID, "status": string(rec.Status)})
			_, _ = fmt.Fprintf(w, "event: request\ndata: %s\n\n", b)
		case <-ping.C:
			// A stream ends with its session: signed out anywhere, or
			// expired.
			if open, err := c.store.SessionOpen(ctx, sess.ID); !c.o.RequestIdentity && (err != nil || !open || c.clock().Unix() > sess.Expires) {
				return
			}
			_, _ = fmt.Fprint(w, ": ping\n\n")
		}
		if rc.Flush() != nil {
			return
		}
	}
}

// relativeTime says how far t is from now, for people.
