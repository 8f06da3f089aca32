package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// sseEvent is one server-sent event of the API's event stream.
type sseEvent struct{ id, typ, data string }

// readEvents calls fn for each event of an event stream until fn says
// stop or the stream ends.
func readEvents(r io.Reader, fn func(sseEvent) (stop bool)) bool {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	var ev sseEvent
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			ev.id = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "event: "):
			ev.typ = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			ev.data = strings.TrimPrefix(line, "data: ")
		case line == "" && ev.typ != "":
			if fn(ev) {
				return true
			}
			ev = sseEvent{}
		}
	}
	return false
}

// openEvents opens the event stream after last (from now when empty).
func (c *cli) openEvents(ctx context.Context, last string) (*http.Response, int, error) {
	resp, err := c.do(ctx, http.MethodGet, "/events", nil, last)
	if err != nil {
		code, err := failure(err)
		return nil, code, err
	}
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		code, err := refusal(resp.StatusCode, raw)
		return nil, code, err
	}
	return resp, exitOK, nil
}

var errReset = errors.New("the events after --last-event-id are no longer kept: list the requests again")

// watch follows the event stream, reconnecting after the last event seen.
func (c *cli) watch(ctx context.Context, last string, count int) (int, error) {
	seen := 0
	for {
		resp, code, err := c.openEvents(ctx, last)
		if err != nil {
			return code, err
		}
		var reset bool
		done := readEvents(resp.Body, func(ev sseEvent) bool {
			if ev.typ == "reset" {
				reset = true
				return true
			}
			if c.output == "json" {
				fmt.Fprintln(c.out, ev.data)
			} else {
				var n map[string]any
				_ = json.Unmarshal([]byte(ev.data), &n)
				fmt.Fprintf(c.out, "%s  %-28s %v  by %v  %v\n", ev.id, ev.typ, n["request_id"], n["actor"], n["link"])
			}
			last = ev.id
			seen++
			return count > 0 && seen >= count
		})
		resp.Body.Close()
		switch {
		case reset:
			return exitRefused, errReset
		case done:
			return exitOK, nil
		}
		select {
		case <-ctx.Done():
			return exitOK, nil
		case <-time.After(2 * time.Second): // the stream broke: resume
		}
	}
}

// outcomes are wait's exit codes by the status a request settled in.
var outcomes = map[string]int{
	"approved": exitOK, "completing": exitOK, "completed": exitOK, "bypassed": exitOK,
	"rejected": exitRejected, "canceled": exitCanceled, "expired": exitExpired, "failed": exitFailed,
}

// wait blocks until request id is approved or ends, and exits by its
// status. It follows the event stream (opened before the record is read,
// so no change falls between the two) and reads the record again on each
// of the request's events and whenever the stream has to be reopened.
func (c *cli) wait(ctx context.Context, id string, timeout time.Duration) (int, error) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	last := ""
	for {
		resp, code, err := c.openEvents(ctx, last)
		if err != nil {
			if ctx.Err() != nil {
				return timedOut(id)
			}
			return code, err
		}
		code, settled, err := c.settled(ctx, id)
		if err != nil || settled {
			resp.Body.Close()
			return code, err
		}
		var reset bool
		readEvents(resp.Body, func(ev sseEvent) bool {
			if ev.typ == "reset" {
				reset = true
				return true
			}
			last = ev.id
			var n struct {
				RequestID string `json:"request_id"`
			}
			if json.Unmarshal([]byte(ev.data), &n) != nil || n.RequestID != id {
				return false
			}
			code, settled, err = c.settled(ctx, id)
			return err != nil || settled
		})
		resp.Body.Close()
		if err != nil || settled {
			return code, err
		}
		if reset {
			last = "" // the record is read again when the stream reopens
		}
		select {
		case <-ctx.Done():
			return timedOut(id)
		case <-time.After(time.Second): // the stream broke: reopen and read again
		}
	}
}

// settled reads request id and reports whether it is approved or ended,
// printing it when so.
func (c *cli) settled(ctx context.Context, id string) (int, bool, error) {
	var r map[string]any
	code, err := c.call(ctx, http.MethodGet, "/requests/"+url.PathEscape(id), nil, &r)
	if err != nil {
		if ctx.Err() != nil {
			code, err = timedOut(id)
		}
		return code, true, err
	}
	status, _ := r["status"].(string)
	outcome, ok := outcomes[status]
	if !ok {
		return exitOK, false, nil
	}
	if c.output == "json" {
		_, err = c.json(r)
	} else {
		fmt.Fprintf(c.out, "%v is %v\n", r["id"], status)
	}
	return outcome, true, err
}

func timedOut(id string) (int, error) {
	return exitTimeout, fmt.Errorf("%s is still undecided at --timeout", id)
}
