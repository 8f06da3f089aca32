package inspect

import (
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"mime/multipart"
	"net/http"
	"net/url"
	"reflect"
	"runtime"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/internal/testkit"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

func code(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	if err != nil {
		return "other: " + err.Error()
	}
	return ""
}

func TestReadMethod(t *testing.T) {
	tests := []struct {
		name, method, query string
		header              http.Header
		judge               bool
		want, from, code    string
	}{
		{name: "plain", method: "POST", want: "POST"},
		{name: "GET without override", method: "GET", query: "a=1", want: "GET"},
		{name: "X-HTTP-Method-Override", method: "POST", header: http.Header{"X-Http-Method-Override": {"PATCH"}}, code: CodeMethodOverride},
		{name: "X-HTTP-Method", method: "POST", header: http.Header{"X-Http-Method": {"DELETE"}}, code: CodeMethodOverride},
		{name: "X-Method-Override", method: "POST", header: http.Header{"X-Method-Override": {"DELETE"}}, code: CodeMethodOverride},
		{name: "override header with underscores", method: "POST", header: http.Header{"X_http_method_override": {"DELETE"}}, code: CodeMethodOverride},
		{name: "override on a GET", method: "GET", header: http.Header{"X-Http-Method-Override": {"DELETE"}}, code: CodeMethodOverride},
		{name: "_method query", method: "POST", query: "_method=DELETE", code: CodeMethodOverride},
		{name: "_method query escaped", method: "GET", query: "%5Fmethod=DELETE", code: CodeMethodOverride},
		{name: "_METHOD query", method: "POST", query: "a=1&_METHOD=delete", code: CodeMethodOverride},
		{name: "a query that only mentions methods", method: "POST", query: "payment_method=card", want: "POST"},
		{name: "broken query naming a method", method: "POST", query: "_method=%zz", code: CodeInvalidQuery},
		{name: "a pair dropped by a ; naming a method", method: "GET", query: "a=1;%5Fmethod=DELETE", code: CodeInvalidQuery},
		{name: "broken query on a read, no method", method: "GET", query: "q=100%", want: "GET"},
		{name: "lower-case method", method: "delete", code: CodeInvalidMethod},
		{name: "mixed-case method", method: "Post", code: CodeInvalidMethod},
		{name: "judged: header", method: "POST", header: http.Header{"X-Http-Method-Override": {"patch"}}, judge: true, want: "PATCH", from: "X-Http-Method-Override"},
		{name: "judged: query", method: "POST", query: "_method=DELETE", judge: true, want: "DELETE", from: "_method (query)"},
		{name: "judged: PHP spelling in the query", method: "POST", query: ".method=DELETE", judge: true, want: "DELETE"},
		{name: "judged: on a DELETE", method: "DELETE", header: http.Header{"X-Http-Method-Override": {"PATCH"}}, judge: true, code: CodeMethodOverride},
		{name: "judged: on a GET", method: "GET", query: "_method=DELETE", judge: true, code: CodeMethodOverride},
		{name: "judged: unknown method", method: "POST", header: http.Header{"X-Http-Method-Override": {"FOO"}}, judge: true, code: CodeMethodOverride},
		{name: "PHP spelling in the query", method: "POST", query: "%5Bmethod=DELETE", code: CodeMethodOverride},
		{name: "judged: two that agree", method: "POST", query: "_method=DELETE", header: http.Header{"X-Http-Method": {"DELETE"}}, judge: true, want: "DELETE"},
		{name: "judged: two that disagree", method: "POST", query: "_method=PUT", header: http.Header{"X-Http-Method": {"DELETE"}}, judge: true, code: CodeMethodOverride},
		{name: "judged: not a method", method: "POST", header: http.Header{"X-Http-Method-Override": {"DE LETE"}}, judge: true, code: CodeMethodOverride},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := &http.Request{Method: tc.method, URL: &url.URL{Path: "/x", RawQuery: tc.query}, Header: tc.header}
			if r.Header == nil {
				r.Header = http.Header{}
			}
			m, err := ReadMethod(r, Options{JudgeMethodOverride: tc.judge})
			if code(err) != tc.code {
				t.Fatalf("error %v, want code %q", err, tc.code)
			}
			if tc.code == "" && (m.Effective != tc.want || m.Wire != tc.method || (tc.from != "" && m.From != tc.from)) {
				t.Fatalf("got %+v, want %s from %q", m, tc.want, tc.from)
			}
		})
	}
}

// TestBodyOverride: a _method field in a form, in a JSON object or in a
// body with no type (which Rack reads as a form) is an override, under any
// spelling a backend reads as _method; judged, it must agree with the
// header's and come on a POST.
func TestBodyOverride(t *testing.T) {
	post := Method{Effective: "POST", Wire: "POST"}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	fw, _ := mw.CreateFormFile("package", "app.bin")
	fw.Write([]byte{0xff, 0x00, 0xfe})
	mw.WriteField("_method", "DELETE")
	mw.Close()
	tests := []struct {
		name, ct, body string
		judged         string // the effective method when judged; "" when the body asks for none
		code           string // the judged refusal
	}{
		{name: "form", ct: "application/x-www-form-urlencoded", body: "name=x&_method=DELETE", judged: "DELETE"},
		{name: "form, PHP spelling .method", ct: "application/x-www-form-urlencoded", body: ".method=DELETE", judged: "DELETE"},
		{name: "form, PHP spelling [method", ct: "application/x-www-form-urlencoded", body: "%5Bmethod=DELETE", judged: "DELETE"},
		{name: "form, _METHOD", ct: "application/x-www-form-urlencoded", body: "_METHOD=delete", judged: "DELETE"},
		{name: "binary multipart form", ct: mw.FormDataContentType(), body: mp.String(), judged: "DELETE"},
		{name: "JSON member", ct: "application/json", body: `{"name":"x","_method":"DELETE"}`, judged: "DELETE"},
		{name: "JSON member that is not a string", ct: "application/json", body: `{"_method":["DELETE"]}`, code: CodeMethodOverride},
		{name: "nested JSON member", ct: "application/json", body: `{"a":{"_method":"DELETE"}}`},
		{name: "no type, form-like", ct: "", body: "_method=DELETE", judged: "DELETE"},
		{name: "no type, JSON", ct: "", body: `{"_method":"DELETE"}`, judged: "DELETE"},
		{name: "text is not read for it", ct: "text/plain", body: "_method=DELETE"},
		{name: "unknown method", ct: "application/x-www-form-urlencoded", body: "_method=FOO", code: CodeMethodOverride},
		{name: "a letter Unicode upper-cases to S", ct: "application/x-www-form-urlencoded", body: "_method=po%C5%BFt", code: CodeMethodOverride},
		{name: "two that disagree", ct: "application/x-www-form-urlencoded", body: "_method=DELETE&_method=PUT", code: CodeMethodOverride},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.ct != "" {
				h.Set("Content-Type", tc.ct)
			}
			b, err := ReadBody([]byte(tc.body), h, Options{MaxBody: 1 << 20})
			if err != nil {
				if code(err) == tc.code {
					return
				}
				t.Fatal(err)
			}
			m, err := b.Override(post, Options{})
			if tc.judged == "" && tc.code == "" {
				if err != nil || m != post {
					t.Fatalf("no override asked, got %+v %v", m, err)
				}
				return
			}
			if code(err) != CodeMethodOverride {
				t.Fatalf("refused by default: %v", err)
			}
			m, err = b.Override(post, Options{JudgeMethodOverride: true})
			if code(err) != tc.code || (tc.code == "" && (m.Effective != tc.judged || m.Wire != "POST")) {
				t.Fatalf("judged: %+v %v, want %s %s", m, err, tc.judged, tc.code)
			}
			if tc.code == "" {
				if _, err := b.Override(Method{Effective: "PUT", Wire: "POST", From: "X-Http-Method"}, Options{JudgeMethodOverride: true}); code(err) != CodeMethodOverride {
					t.Fatalf("a body and a header that disagree passed: %v", err)
				}
				if _, err := b.Override(Method{Effective: "DELETE", Wire: "DELETE"}, Options{JudgeMethodOverride: true}); code(err) != CodeMethodOverride {
					t.Fatalf("an override on a DELETE passed: %v", err)
				}
			}
		})
	}
	if MayOverride(http.Header{"Content-Type": {"application/octet-stream"}}) || !MayOverride(http.Header{}) ||
		!MayOverride(http.Header{"Content-Type": {"application/x-www-form-urlencoded, x"}}) || !MayOverride(http.Header{"Content-Type": {"application/vnd.api+json"}}) {
		t.Fatal("MayOverride")
	}
}

func TestReadTarget(t *testing.T) {
	tests := []struct {
		raw, query string
		want, code string
		judged     string // the normalized path when ambiguous paths are judged
	}{
		{raw: "/devices/2", want: "/devices/2"},
		{raw: "/devices/2/", want: "/devices/2/"},
		{raw: "//devices///2", want: "/devices/2"},
		{raw: "/dev%69ces/%32", want: "/devices/2"},
		{raw: "/apps/caf%c3%a9", want: "/apps/caf%C3%A9"},
		{raw: "/apps/a%20b", want: "/apps/a%20b"},
		{raw: "/apps/2%2Fx", code: CodeAmbiguousPath, judged: "/apps/2%2Fx"},
		{raw: "/apps/2%2fx", code: CodeAmbiguousPath, judged: "/apps/2%2Fx"},
		{raw: "/apps/./2", code: CodeAmbiguousPath, judged: "/apps/2"},
		{raw: "/apps/x/../../roles/2", code: CodeAmbiguousPath, judged: "/roles/2"},
		{raw: "/apps/%2e%2e/roles/2", code: CodeAmbiguousPath, judged: "/roles/2"},
		{raw: "/apps/.%2E/roles/2", code: CodeAmbiguousPath, judged: "/roles/2"},
		{raw: "/apps/..", code: CodeAmbiguousPath, judged: "/"},
		{raw: "/apps%5C..%5Croles%5C2", code: CodeAmbiguousPath, judged: "/apps%5C..%5Croles%5C2"},
		{raw: "/apps/2%5Cx", code: CodeAmbiguousPath, judged: "/apps/2%5Cx"},
		{raw: "/apps/2;jsessionid=x", code: CodeAmbiguousPath, judged: "/apps/2"},
		{raw: "/apps/x/..;/roles/2", code: CodeAmbiguousPath, judged: "/apps/roles/2"},
		{raw: "/apps/2%00.json", code: CodeAmbiguousPath, judged: "/apps/2%00.json"},
		{raw: "/apps/2", query: "a=%zz", code: CodeInvalidQuery},
		{raw: "/apps/2", query: "a=1;b=2", code: CodeInvalidQuery},
		{raw: "/apps/..data", want: "/apps/..data"},
	}
	for _, tc := range tests {
		t.Run(tc.raw+"?"+tc.query, func(t *testing.T) {
			u := &url.URL{RawQuery: tc.query}
			var err error
			u.Path, err = url.PathUnescape(tc.raw)
			if err != nil {
				u.Path = tc.raw
			}
			u.RawPath = tc.raw
			if u.EscapedPath() != tc.raw {
				t.Fatalf("test setup: escaped path %q", u.EscapedPath())
			}
			tgt, err := ReadTarget(u, Options{})
			if code(err) != tc.code {
				t.Fatalf("error %v, want code %q", err, tc.code)
			}
			if tc.code == "" && (tgt.Path != tc.want || tgt.RawPath != tc.raw) {
				t.Fatalf("got %q (raw %q), want %q", tgt.Path, tgt.RawPath, tc.want)
			}
			if tc.judged != "" {
				tgt, err := ReadTarget(u, Options{JudgeAmbiguousPaths: true})
				if err != nil || tgt.Path != tc.judged || tgt.RawPath != tc.raw {
					t.Fatalf("judged: got %q (raw %q) %v, want %q", tgt.Path, tgt.RawPath, err, tc.judged)
				}
			}
		})
	}
}

// TestReadTargetKeepsABareQuestionMark: "/scripts?" is read as sent, an
// empty query with its "?", and "/scripts" without one.
func TestReadTargetKeepsABareQuestionMark(t *testing.T) {
	for target, want := range map[string]bool{"/scripts?": true, "/scripts": false, "/scripts?x=1": false} {
		u, err := url.ParseRequestURI(target)
		if err != nil {
			t.Fatal(err)
		}
		tgt, err := ReadTarget(u, Options{})
		if err != nil || tgt.ForceQuery != want || tgt.RawQuery != u.RawQuery {
			t.Errorf("%s: ForceQuery %v, raw query %q, %v", target, tgt.ForceQuery, tgt.RawQuery, err)
		}
	}
}

func TestReadBody(t *testing.T) {
	wiped := []byte(`{"wiped":true}`)
	utf16 := func(e unicode.Endianness, bom unicode.BOMPolicy, s string) []byte {
		b, err := unicode.UTF16(e, bom).NewEncoder().Bytes([]byte(s))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	utf32le, _ := utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM).NewEncoder().Bytes(wiped)
	deep := func(n int) []byte {
		return []byte(`{"wiped":true,"x":` + strings.Repeat("[", n-1) + strings.Repeat("]", n-1) + "}")
	}
	var mp bytes.Buffer
	mw := multipart.NewWriter(&mp)
	mw.WriteField("wiped", "true")
	mw.Close()
	tests := []struct {
		name     string
		body     []byte
		ct, ce   string
		want     string // the value as JSON
		code     string
		maxBody  int64
		mediaTyp string
	}{
		{name: "JSON", body: wiped, ct: "application/json", want: `{"wiped":true}`},
		{name: "JSON, charset utf-8", body: wiped, ct: "application/json; charset=UTF-8", want: `{"wiped":true}`},
		{name: "merge patch JSON", body: wiped, ct: "application/merge-patch+json", want: `{"wiped":true}`},
		{name: "gzip", body: testkit.Compress(t, "gzip", wiped), ct: "application/json", ce: "gzip", want: `{"wiped":true}`},
		{name: "GZIP", body: testkit.Compress(t, "gzip", wiped), ct: "application/json", ce: "GZIP", want: `{"wiped":true}`},
		{name: "x-gzip", body: testkit.Compress(t, "gzip", wiped), ct: "application/json", ce: "x-gzip", want: `{"wiped":true}`},
		{name: "deflate (zlib)", body: testkit.Compress(t, "deflate", wiped), ct: "application/json", ce: "deflate", want: `{"wiped":true}`},
		{name: "deflate (raw)", body: testkit.Compress(t, "flate", wiped), ct: "application/json", ce: "Deflate", want: `{"wiped":true}`},
		{name: "br", body: testkit.Compress(t, "br", wiped), ct: "application/json", ce: "br", want: `{"wiped":true}`},
		{name: "zstd", body: testkit.Compress(t, "zstd", wiped), ct: "application/json", ce: "zstd", want: `{"wiped":true}`},
		{name: "stacked gzip, br", body: testkit.Compress(t, "br", testkit.Compress(t, "gzip", wiped)), ct: "application/json", ce: "gzip, br", want: `{"wiped":true}`},
		{name: "identity", body: wiped, ct: "application/json", ce: "identity", want: `{"wiped":true}`},
		{name: "unknown coding", body: wiped, ct: "application/json", ce: "compress", code: CodeUnsupportedEncoding},
		{name: "not gzip", body: wiped, ct: "application/json", ce: "gzip", code: CodeInvalidBody},
		{name: "UTF-8 BOM", body: append([]byte{0xef, 0xbb, 0xbf}, wiped...), ct: "application/json", want: `{"wiped":true}`},
		{name: "utf-16 with BOM", body: utf16(unicode.LittleEndian, unicode.UseBOM, `{"wiped":true}`), ct: "application/json; charset=utf-16", want: `{"wiped":true}`},
		{name: "utf-16 without BOM", body: utf16(unicode.BigEndian, unicode.IgnoreBOM, `{"wiped":true}`), ct: "application/json; charset=utf-16", code: CodeUnsupportedEncoding},
		{name: "utf-16be", body: utf16(unicode.BigEndian, unicode.IgnoreBOM, `{"wiped":true}`), ct: "application/json; charset=utf-16be", want: `{"wiped":true}`},
		{name: "utf-16le", body: utf16(unicode.LittleEndian, unicode.IgnoreBOM, `{"wiped":true}`), ct: "application/json; charset=UTF-16LE", want: `{"wiped":true}`},
		{name: "UTF-16 sniffed without a charset", body: utf16(unicode.LittleEndian, unicode.IgnoreBOM, `{"wiped":true}`), ct: "application/json", want: `{"wiped":true}`},
		{name: "UTF-32 sniffed without a charset", body: utf32le, ct: "application/json", want: `{"wiped":true}`},
		{name: "latin-1", body: wiped, ct: "application/json; charset=iso-8859-1", code: CodeUnsupportedEncoding},
		{name: "64 levels deep", body: deep(64), ct: "application/json", want: ``},
		{name: "65 levels deep", body: deep(65), ct: "application/json", code: CodeInvalidBody},
		{name: "10,001 levels deep", body: deep(10001), ct: "application/json", code: CodeInvalidBody},
		{name: "repeated member", body: []byte(`{"wiped":false,"wiped":true}`), ct: "application/json", code: CodeInvalidBody},
		{name: "repeated member, escaped", body: []byte(`{"wiped":false,"wip\u0065d":true}`), ct: "application/json", code: CodeInvalidBody},
		{name: "repeated member, nested", body: []byte(`{"a":{"b":1,"b":2}}`), ct: "application/json", code: CodeInvalidBody},
		{name: "members differing in case", body: []byte(`{"wiped":false,"Wiped":true}`), ct: "application/json", code: CodeInvalidBody},
		{name: "members differing in case, Kelvin sign", body: []byte(`{"k":1,"\u212a":2}`), ct: "application/json", code: CodeInvalidBody},
		{name: "members differing in case, nested", body: []byte(`{"a":[{"id":1,"ID":2}]}`), ct: "application/json", code: CodeInvalidBody},
		{name: "distinct members", body: []byte(`{"id":1,"idx":2,"ïd":3}`), ct: "application/json", want: `{"id":1,"idx":2,"ïd":3}`},
		{name: "not JSON", body: []byte(`{"wiped":true`), ct: "application/json", code: CodeInvalidBody},
		{name: "two JSON values", body: []byte(`{"wiped":false}{"wiped":true}`), ct: "application/json", code: CodeInvalidBody},
		{name: "invalid UTF-8 in JSON", body: []byte("{\"a\":\"\xff\"}"), ct: "application/json", code: CodeInvalidBody},
		{name: "empty JSON body", body: nil, ct: "application/json", want: "null"},
		{name: "form", body: []byte("wiped=true&x=1&x=2"), ct: "application/x-www-form-urlencoded", want: `{"wiped":["true"],"x":["1","2"]}`},
		{name: "form holding JSON", body: wiped, ct: "application/x-www-form-urlencoded", code: CodeInvalidBody},
		{name: "form holding JSON in a value", body: []byte(`x={"wiped":true}`), ct: "application/x-www-form-urlencoded", code: CodeInvalidBody},
		{name: "form after JSON", body: []byte(`{"wiped":true}&x=1`), ct: "application/x-www-form-urlencoded", code: CodeInvalidBody},
		{name: "form holding escaped JSON", body: []byte(`x=%7B%22a%22%3A1%7D`), ct: "application/x-www-form-urlencoded", want: `{"x":["{\"a\":1}"]}`},
		{name: "multipart with a preamble", body: append([]byte(`{"wiped":true}`+"\r\n"), mp.Bytes()...), ct: mw.FormDataContentType(), code: CodeInvalidBody},
		{name: "multipart with an epilogue", body: append(bytes.Clone(mp.Bytes()), []byte(`{"wiped":true}`)...), ct: mw.FormDataContentType(), code: CodeInvalidBody},
		{name: "multipart part named twice", body: []byte("--b\r\nContent-Disposition: form-data; name=\"x\"; name=\"_method\"\r\n\r\nDELETE\r\n--b--\r\n"), ct: "multipart/form-data; boundary=b", code: CodeInvalidBody},
		{name: "gzip with a file name", body: gzipNamed(t, wiped), ct: "application/json", ce: "gzip", code: CodeInvalidBody},
		{name: "two gzip members", body: append(testkit.Compress(t, "gzip", []byte(`{"wiped":`)), testkit.Compress(t, "gzip", []byte(`true}`))...), ct: "application/json", ce: "gzip", want: `{"wiped":true}`},
		{name: "a number float64 rounds", body: []byte(`{"limit":99.99999999999999999}`), ct: "application/json", code: CodeInvalidBody},
		{name: "an integer past 2^53", body: []byte(`{"id":9007199254740993}`), ct: "application/json", code: CodeInvalidBody},
		{name: "a number past float64", body: []byte(`{"n":1e400}`), ct: "application/json", code: CodeInvalidBody},
		{name: "numbers float64 holds", body: []byte(`{"a":0.1,"b":1e2,"c":9007199254740992,"d":-12.5e-3,"e":123456789012345}`), ct: "application/json", want: `{"a":0.1,"b":100,"c":9007199254740992,"d":-0.0125,"e":123456789012345}`},
		{name: "broken form", body: []byte("a=%zz"), ct: "application/x-www-form-urlencoded", code: CodeInvalidBody},
		{name: "form in latin-1", body: []byte("a=b"), ct: "application/x-www-form-urlencoded; charset=iso-8859-1", code: CodeUnsupportedEncoding},
		{name: "multipart", body: mp.Bytes(), ct: mw.FormDataContentType(), want: `{"wiped":["true"]}`},
		{name: "multipart without boundary", body: mp.Bytes(), ct: "multipart/form-data", code: CodeInvalidBody},
		{name: "no content type, JSON", body: wiped, want: `{"wiped":true}`},
		{name: "no content type, not JSON", body: []byte("wiped"), want: "null"},
		{name: "text", body: wiped, ct: "text/plain", want: "null", mediaTyp: "text/plain"},
		{name: "octet stream", body: []byte{1, 2, 3}, ct: "application/octet-stream", want: "null"},
		{name: "bad content type", body: wiped, ct: "application/json; charset", code: CodeInvalidBody},
		{name: "decoded over the limit", body: testkit.Compress(t, "gzip", bytes.Repeat([]byte(" "), 2000)), ct: "application/json", ce: "gzip", maxBody: 1000, code: CodeBodyTooLarge},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{}
			if tc.ct != "" {
				h.Set("Content-Type", tc.ct)
			}
			if tc.ce != "" {
				h.Set("Content-Encoding", tc.ce)
			}
			max := tc.maxBody
			if max == 0 {
				max = 1 << 20
			}
			b, err := ReadBody(tc.body, h, Options{MaxBody: max})
			if code(err) != tc.code {
				t.Fatalf("error %v, want code %q", err, tc.code)
			}
			if err != nil {
				return
			}
			if !bytes.Equal(b.Raw, tc.body) {
				t.Fatal("the raw body changed")
			}
			if tc.want != "" {
				got, _ := json.Marshal(b.Value)
				var w, g any
				json.Unmarshal([]byte(tc.want), &w)
				json.Unmarshal(got, &g)
				if !reflect.DeepEqual(w, g) {
					t.Fatalf("value %s, want %s", got, tc.want)
				}
			}
			if tc.mediaTyp != "" && b.MediaType != tc.mediaTyp {
				t.Fatalf("media type %q", b.MediaType)
			}
		})
	}
	var two = http.Header{"Content-Type": {"text/plain", "application/json"}}
	if _, err := ReadBody(wiped, two, Options{MaxBody: 1 << 20}); code(err) != CodeInvalidBody {
		t.Fatalf("two Content-Type headers: %v", err)
	}
}

// TestDecompressionBombIsBounded: a 1 KiB gzip body that inflates far past
// max_body is refused with 413, having allocated less than max_body: the
// decoded bytes are counted before any buffer is made for them. So are a
// gzip inside a gzip, and brotli and zstd bombs.
func gzipNamed(t *testing.T, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Name = `{"wiped":true}`
	w.Write(b)
	w.Close()
	return buf.Bytes()
}

func TestDecompressionBombIsBounded(t *testing.T) {
	const maxBody = 256 << 10
	zeros := make([]byte, 1_000_000)
	many := make([]byte, 64<<20)
	bombs := []struct {
		name, coding string
		body         []byte
		allocBound   int
	}{
		{"gzip, 1 MB of zeros", "gzip", testkit.Compress(t, "gzip", zeros), maxBody},
		{"gzip inside gzip, 64 MiB of zeros", "gzip, gzip", testkit.Compress(t, "gzip", testkit.Compress(t, "gzip", many)), maxBody},
		{"zstd, 4 MiB of zeros", "zstd", testkit.Compress(t, "zstd", many[:4<<20]), maxBody},
		// Brotli's decoder holds a window of up to 16 MiB, whatever the
		// limit: bounded, but by the format, not by max_body.
		{"br, 64 MiB of zeros", "br", testkit.Compress(t, "br", many), 16<<20 + maxBody},
	}
	for _, c := range bombs {
		t.Run(c.name, func(t *testing.T) {
			if len(c.body) > 1<<10 {
				t.Fatalf("the bomb is %d bytes, not 1 KiB", len(c.body))
			}
			h := http.Header{"Content-Type": {"application/json"}, "Content-Encoding": {c.coding}}
			runtime.GC()
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, err := ReadBody(c.body, h, Options{MaxBody: maxBody})
			runtime.ReadMemStats(&after)
			if code(err) != CodeBodyTooLarge {
				t.Fatalf("%v, want 413", err)
			}
			alloc := after.TotalAlloc - before.TotalAlloc
			t.Logf("a %d-byte bomb refused having allocated %d bytes (max_body %d)", len(c.body), alloc, maxBody)
			if alloc > uint64(c.allocBound) {
				t.Fatalf("%d bytes allocated, more than %d", alloc, c.allocBound)
			}
		})
	}
}
