package bypass

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// recorder is a backend that keeps every request it receives as the
// bytes came: the request line, the header fields in order, the body, and
// how it was framed (Content-Length or chunked, with any trailer fields).
// It answers each with 200 and {}.
type recorder struct {
	ln   net.Listener
	mu   sync.Mutex
	seen []rawRequest
}

// rawRequest is one request as it reached the recorder.
type rawRequest struct {
	line    string   // "POST /scripts? HTTP/1.1"
	fields  []string // "Name: value", in order
	body    []byte
	chunked bool
	trailer []string // trailer fields of a chunked body
}

func (q rawRequest) field(name string) []string {
	var out []string
	for _, f := range q.fields {
		if n, v, ok := strings.Cut(f, ":"); ok && strings.EqualFold(n, name) {
			out = append(out, strings.TrimSpace(v))
		}
	}
	return out
}

func (q rawRequest) String() string {
	framing := "Content-Length"
	if q.chunked {
		framing = fmt.Sprintf("chunked, trailers %q", q.trailer)
	}
	return fmt.Sprintf("%s\n\t%s\n\t(%s) %q", q.line, strings.Join(q.fields, "\n\t"), framing, q.body)
}

func startRecorder(t *testing.T) *recorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &recorder{ln: ln}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			go r.serve(conn)
		}
	}()
	return r
}

func (r *recorder) addr() string { return r.ln.Addr().String() }

// since returns the requests received after the first n.
func (r *recorder) since(n int) []rawRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]rawRequest(nil), r.seen[n:]...)
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.seen)
}

func (r *recorder) serve(conn net.Conn) {
	defer conn.Close()
	br := bufio.NewReader(conn)
	for {
		q, err := readRaw(br, conn)
		if err != nil {
			return
		}
		r.mu.Lock()
		r.seen = append(r.seen, q)
		r.mu.Unlock()
		if _, err := io.WriteString(conn, "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"); err != nil {
			return
		}
	}
}

// readRaw reads one request: head, then the body as its framing says,
// answering an Expect: 100-continue first.
func readRaw(br *bufio.Reader, w io.Writer) (rawRequest, error) {
	var q rawRequest
	line, err := readLine(br)
	if err != nil {
		return q, err
	}
	q.line = line
	if q.fields, err = readFields(br); err != nil {
		return q, err
	}
	if len(q.field("Expect")) > 0 {
		if _, err := io.WriteString(w, "HTTP/1.1 100 Continue\r\n\r\n"); err != nil {
			return q, err
		}
	}
	if te := q.field("Transfer-Encoding"); len(te) > 0 && strings.EqualFold(te[len(te)-1], "chunked") {
		q.chunked = true
		for {
			l, err := readLine(br)
			if err != nil {
				return q, err
			}
			size, err := strconv.ParseInt(strings.TrimSpace(strings.SplitN(l, ";", 2)[0]), 16, 64)
			if err != nil {
				return q, err
			}
			if size == 0 {
				break
			}
			chunk := make([]byte, size+2)
			if _, err := io.ReadFull(br, chunk); err != nil {
				return q, err
			}
			q.body = append(q.body, chunk[:size]...)
		}
		q.trailer, err = readFields(br)
		return q, err
	}
	if cl := q.field("Content-Length"); len(cl) > 0 {
		n, err := strconv.Atoi(cl[0])
		if err != nil {
			return q, err
		}
		q.body = make([]byte, n)
		_, err = io.ReadFull(br, q.body)
		return q, err
	}
	return q, nil
}

// readFields reads field lines up to the empty line that ends them.
func readFields(br *bufio.Reader) ([]string, error) {
	var out []string
	for {
		l, err := readLine(br)
		if err != nil || l == "" {
			return out, err
		}
		out = append(out, l)
	}
}

func readLine(br *bufio.Reader) (string, error) {
	l, err := br.ReadString('\n')
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(strings.TrimSuffix(l, "\n"), "\r"), nil
}
