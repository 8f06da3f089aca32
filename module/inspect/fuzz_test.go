package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// FuzzReadBody reads arbitrary bodies under arbitrary content types and
// codings: it never panics, refuses only with a contract error, never
// changes the bytes, and a JSON value it hands policies is valid JSON.
func FuzzReadBody(f *testing.F) {
	f.Add([]byte(`{"wiped":true}`), "application/json", "")
	f.Add([]byte(`{"a":1,"A":2}`), "application/json; charset=utf-8", "")
	f.Add([]byte("\xef\xbb\xbf{}"), "application/merge-patch+json", "identity")
	f.Add([]byte("a=1&_method=DELETE"), "application/x-www-form-urlencoded", "")
	f.Add([]byte("--b\r\nContent-Disposition: form-data; name=\"x\"\r\n\r\n1\r\n--b--\r\n"), "multipart/form-data; boundary=b", "")
	f.Add([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0}, "application/json", "gzip")
	f.Add([]byte("\xff\xfe{\x00}\x00"), "application/json; charset=utf-16", "")
	f.Add([]byte("[[[[[[[[[[[[]]]]]]]]]]]]"), "", "br, gzip")
	f.Fuzz(func(t *testing.T, body []byte, ct, ce string) {
		h := http.Header{}
		if ct != "" {
			h.Set("Content-Type", ct)
		}
		if ce != "" {
			h.Set("Content-Encoding", ce)
		}
		in := bytes.Clone(body)
		b, err := ReadBody(body, h, Options{MaxBody: 1 << 16})
		if !bytes.Equal(in, body) {
			t.Fatal("the body was changed")
		}
		if err != nil {
			var e *Error
			if !errors.As(err, &e) || (e.Status != 400 && e.Status != 413 && e.Status != 415) {
				t.Fatalf("not a contract error: %v", err)
			}
			return
		}
		sum := sha256.Sum256(body)
		if !bytes.Equal(b.Raw, body) || b.SHA256 != hex.EncodeToString(sum[:]) {
			t.Fatal("raw body or hash differ")
		}
		if b.Value != nil {
			out, err := json.Marshal(b.Value)
			if err != nil || !json.Valid(out) {
				t.Fatalf("the value is not JSON: %v", err)
			}
		}
	})
}

// FuzzReadTarget reads arbitrary paths and queries: it never panics, and
// a path it judges is normalized (rooted, no dot segments, no empty
// segments but a trailing one) and stays so when normalized again.
func FuzzReadTarget(f *testing.F) {
	for _, s := range []string{"/devices/2", "/apps/2%2Fx", "/a/../b", "//x///y/", "/%2e%2E/r", "/a;b", "/caf%c3%a9", "/%zz"} {
		f.Add(s, "a=1")
	}
	f.Fuzz(func(t *testing.T, raw, query string) {
		u, err := url.Parse("http://h" + raw)
		if err != nil || u.Host != "h" {
			return
		}
		u.RawQuery = query
		for _, judge := range []bool{false, true} {
			tgt, err := ReadTarget(u, Options{JudgeAmbiguousPaths: judge})
			if err != nil {
				var e *Error
				if !errors.As(err, &e) || e.Status != http.StatusBadRequest {
					t.Fatalf("not a contract error: %v", err)
				}
				continue
			}
			p := tgt.Path
			if !strings.HasPrefix(p, "/") || NormalizePath(p) != p {
				t.Fatalf("%q normalized to %q, which normalizes to %q", raw, p, NormalizePath(p))
			}
			for i, seg := range strings.Split(p, "/")[1:] {
				last := i == len(strings.Split(p, "/"))-2
				if seg == "." || seg == ".." || (seg == "" && !last && p != "/") {
					t.Fatalf("%q normalized to %q", raw, p)
				}
			}
			if tgt.RawPath != u.EscapedPath() && !(u.EscapedPath() == "" && tgt.RawPath == "/") {
				t.Fatalf("raw path %q, escaped %q", tgt.RawPath, u.EscapedPath())
			}
		}
	})
}
