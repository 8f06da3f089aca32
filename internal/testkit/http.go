package testkit

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Client calls a server under test and reads the contract's answers.
type Client struct {
	t    testing.TB
	Base string
	// HTTP sends the calls: a connection per call (a configuration reload
	// closes idle connections, which a POST must not be sent on), waiting
	// for the server's go-ahead on Expect: 100-continue.
	HTTP *http.Client
}

// NewClient returns a Client of base (scheme, host and port).
func NewClient(t testing.TB, base string) *Client {
	return &Client{t: t, Base: base, HTTP: &http.Client{Timeout: 30 * time.Second,
		Transport: &http.Transport{DisableKeepAlives: true, ExpectContinueTimeout: 10 * time.Second}}}
}

// Answer is a decoded answer.
type Answer struct {
	Status int
	Header http.Header
	// Body is the answer as a JSON object, when it is one.
	Body map[string]any
	Raw  string
}

// Code is the contract error code of the answer, if any.
func (a Answer) Code() string {
	e, _ := a.Body["error"].(map[string]any)
	c, _ := e["code"].(string)
	return c
}

// Str is the string field k of the answer's body.
func (a Answer) Str(k string) string { s, _ := a.Body[k].(string); return s }

// Do sends method path (relative to Base) with a Bearer token (unless
// empty) and body (unless empty); headers come as name, value pairs.
func (c *Client) Do(method, path, token, body string, headers ...string) Answer {
	c.t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, c.Base+path, rd)
	if err != nil {
		c.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := c.HTTP.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := Answer{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	_ = json.Unmarshal(raw, &a.Body)
	return a
}

// Expect fails the test unless a has the status and error code ("" for
// none), and returns it.
func (c *Client) Expect(a Answer, status int, code string) Answer {
	c.t.Helper()
	if a.Status != status || a.Code() != code {
		c.t.Fatalf("got %d %q, want %d %q: %s", a.Status, a.Code(), status, code, a.Raw)
	}
	return a
}

// WaitHealthy waits until url answers 200: a gateway answers judged calls
// once its runtime policies are loaded, which it does in the background.
func WaitHealthy(t testing.TB, url string) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second}
	WaitFor(t, func() bool {
		resp, err := c.Get(url)
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
}

// RawCall writes raw, a request as its bytes (chunked bodies, trailers,
// Expect and all), to addr and reads the final answer, after any 1xx: its
// status and body.
func RawCall(t testing.TB, addr, raw string) (int, []byte) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := io.WriteString(conn, raw); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(conn)
	for {
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			t.Fatalf("reading the answer to %q: %v", strings.SplitN(raw, "\r\n", 2)[0], err)
		}
		b, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode >= 200 {
			return resp.StatusCode, b
		}
	}
}
