package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
)

// Exit codes of `gateway approvals`, for scripts.
const (
	exitOK          = 0
	exitRefused     = 1 // the gateway refused the call (a 4xx answer)
	exitUsage       = 2 // bad flags or arguments
	exitUnavailable = 3 // the gateway or its store could not be reached (5xx, network)

	// wait's outcomes besides exitOK (approved, completed or bypassed).
	exitRejected = 4
	exitCanceled = 5
	exitExpired  = 6
	exitFailed   = 7
	exitTimeout  = 8 // --timeout passed with the request still undecided
)

// cli holds the common flags and talks to the approval API.
type cli struct {
	server, prefix, token, tokenFile, output string
	out                                      io.Writer
	client                                   *http.Client
}

// usageError is a missing server or token: exit code 2, not 3.
type usageError struct{ error }

func (c *cli) tokenValue() (string, error) {
	switch {
	case c.token != "":
		return c.token, nil
	case c.tokenFile != "":
		b, err := os.ReadFile(c.tokenFile)
		return strings.TrimSpace(string(b)), err
	case os.Getenv("APPROVAL_TOKEN") != "":
		return os.Getenv("APPROVAL_TOKEN"), nil
	}
	return "", usageError{errors.New("no token: pass --token, --token-file or set APPROVAL_TOKEN")}
}

// do sends one API call; path is below {prefix}/api/v1.
func (c *cli) do(ctx context.Context, method, path string, body any, lastEventID string) (*http.Response, error) {
	if c.server == "" {
		return nil, usageError{errors.New("no server: pass --server or set APPROVAL_SERVER")}
	}
	tok, err := c.tokenValue()
	if err != nil {
		return nil, err
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimRight(c.server, "/")+c.prefix+"/api/v1"+path, rd)
	if err != nil {
		return nil, usageError{err}
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if lastEventID != "" {
		req.Header.Set("Last-Event-ID", lastEventID)
	}
	return c.client.Do(req)
}

// call sends a request and decodes a 2xx JSON answer into out; otherwise it
// returns the exit code and the gateway's error.
func (c *cli) call(ctx context.Context, method, path string, body, out any) (int, error) {
	if c.output != "table" && c.output != "json" {
		return exitUsage, fmt.Errorf("--output %q: want table or json", c.output)
	}
	resp, err := c.do(ctx, method, path, body, "")
	if err != nil {
		return failure(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode/100 != 2 {
		return refusal(resp.StatusCode, raw)
	}
	return exitOK, json.Unmarshal(raw, out)
}

// failure is the exit code of a call that got no answer.
func failure(err error) (int, error) {
	if errors.As(err, new(usageError)) {
		return exitUsage, err
	}
	return exitUnavailable, err
}

// refusal turns an error answer into an exit code and message.
func refusal(status int, raw []byte) (int, error) {
	var e struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	_ = json.Unmarshal(raw, &e)
	msg := fmt.Sprintf("%d %s: %s", status, e.Error.Code, e.Error.Message)
	if e.Error.Code == "" {
		msg = fmt.Sprintf("%d %s", status, http.StatusText(status))
	}
	if status >= 500 {
		return exitUnavailable, errors.New(msg)
	}
	return exitRefused, errors.New(msg)
}

func (c *cli) json(v any) (int, error) {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return exitOK, enc.Encode(v)
}
