package inspect

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"testing"
)

// BenchmarkReadMethod is the cost every call pays (reads included): the
// method-override check, against reading the method alone.
func BenchmarkReadMethod(b *testing.B) {
	r := &http.Request{Method: "GET", URL: &url.URL{Path: "/devices", RawQuery: "page=2&sort=name"}, Header: http.Header{
		"Accept": {"application/json"}, "User-Agent": {"curl/8"}, "Authorization": {"Bearer x"}, "X-Request-Id": {"abc"},
	}}
	b.Run("inspect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadMethod(r, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline: method only", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if r.Method == "" {
				b.Fatal()
			}
		}
	})
}

// BenchmarkReadTarget is a judged call's path and query reading, against
// the query parse the input needed before.
func BenchmarkReadTarget(b *testing.B) {
	u := &url.URL{Path: "/devices/2/wipe", RawQuery: "force=1"}
	b.Run("inspect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadTarget(u, Options{}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline: url.Query", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			_ = u.Query()
		}
	})
}

// BenchmarkReadBody is a small JSON body read strictly (duplicates, case
// collisions, depth), against encoding/json's lenient parse into any that
// the input used before.
func BenchmarkReadBody(b *testing.B) {
	body := []byte(`{"name":"LT-0042","wiped":true,"reason":"stolen","tags":["a","b"],"owner":{"id":7,"team":"it"}}`)
	h := http.Header{"Content-Type": {"application/json"}}
	b.Run("inspect", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := ReadBody(body, h, Options{MaxBody: 1 << 20}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("baseline: encoding/json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			d := json.NewDecoder(bytes.NewReader(body))
			d.UseNumber()
			var v any
			if err := d.Decode(&v); err != nil {
				b.Fatal(err)
			}
		}
	})
}
