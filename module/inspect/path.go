package inspect

import (
	"net/http"
	"net/url"
	"strings"
)

// Target is the request target as the backend will receive it: the raw
// (escaped) path and query that are forwarded, stored and replayed byte
// for byte, and the normalized path and parsed query policies judge.
type Target struct {
	// RawPath is the escaped path as it is forwarded.
	RawPath string
	// Path is RawPath normalized: escapes of unreserved characters
	// decoded, other escapes in upper case, dot segments removed and
	// duplicate slashes merged. It is still escaped: "%2F" stays apart
	// from "/".
	Path string
	// RawQuery is the query as it is forwarded; Query is it parsed.
	RawQuery string
	Query    url.Values
	// ForceQuery is set when the target ends in a bare "?" (an empty
	// query, sent as such): it is forwarded, stored and replayed with it.
	ForceQuery bool
}

// ReadTarget reads the path and query of a judged call. A path that
// backends resolve differently (dot segments, encoded slashes,
// backslashes, semicolons, encoded control bytes) is refused unless
// o.JudgeAmbiguousPaths; a query that does not parse is always refused, as
// its pairs could not all be shown to the policy.
func ReadTarget(u *url.URL, o Options) (Target, error) {
	raw := u.EscapedPath()
	if raw == "" {
		raw = "/"
	}
	t := Target{RawPath: raw, RawQuery: u.RawQuery, ForceQuery: u.ForceQuery && u.RawQuery == ""}
	if why := ambiguity(raw); why != "" && !o.JudgeAmbiguousPaths {
		return t, refuse(http.StatusBadRequest, CodeAmbiguousPath,
			"the path holds %s, which backends resolve differently; send the path the backend should see", why)
	}
	t.Path = NormalizePath(raw)
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return t, refuse(http.StatusBadRequest, CodeInvalidQuery, "the query does not parse (%v), so the policy could not see all of it", err)
	}
	t.Query = q
	return t, nil
}

// ambiguity names what in an escaped path backends resolve differently,
// or returns "" when nothing does.
func ambiguity(raw string) string {
	for i := 0; i < len(raw); i++ {
		switch c := raw[i]; c {
		case '\\':
			return "a backslash"
		case ';':
			return "a semicolon (a path parameter to some backends)"
		case '%':
			if i+2 >= len(raw) {
				return "a broken escape"
			}
			b, ok := unhex(raw[i+1], raw[i+2])
			switch {
			case !ok:
				return "a broken escape"
			case b == '/':
				return "an encoded slash (%2F)"
			case b == '\\':
				return "an encoded backslash (%5C)"
			case b < 0x20 || b == 0x7f:
				return "an encoded control byte"
			}
		}
	}
	if !mayHoldDots(raw) {
		return ""
	}
	for _, seg := range strings.Split(raw, "/") {
		if s := decodeUnreserved(seg); s == "." || s == ".." {
			return "a dot segment (" + seg + ")"
		}
	}
	return ""
}

// mayHoldDots is a cheap test that a path may hold a dot segment: a "/."
// or an escape.
func mayHoldDots(raw string) bool {
	return strings.Contains(raw, "/.") || strings.IndexByte(raw, '%') >= 0
}

// NormalizePath is the syntax-based normalization of an escaped path (RFC
// 3986 section 6.2.2: escapes of unreserved characters decoded, the other
// escapes in upper case, dot segments removed), with duplicate slashes
// merged and path parameters dropped as many servers do. A trailing slash
// is kept.
func NormalizePath(raw string) string {
	if strings.HasPrefix(raw, "/") && !mayHoldDots(raw) && !strings.Contains(raw, "//") && strings.IndexByte(raw, ';') < 0 {
		return raw // already normal: the common case
	}
	segs := strings.Split(raw, "/")
	out := make([]string, 0, len(segs))
	for i, seg := range segs {
		// A path parameter (";jsessionid=…") is dropped, as Tomcat and
		// Spring do: "/roles/2;x" is role 2 and "..;" is "..".
		if j := strings.IndexByte(seg, ';'); j >= 0 {
			seg = seg[:j]
		}
		seg = decodeUnreserved(seg)
		last := i == len(segs)-1
		switch seg {
		case "", ".":
			if last {
				out = append(out, "") // keep a trailing slash
			}
			continue
		case "..":
			if len(out) > 0 {
				out = out[:len(out)-1]
			}
			if last {
				out = append(out, "")
			}
			continue
		}
		out = append(out, seg)
	}
	return "/" + strings.Join(out, "/")
}

// decodeUnreserved decodes the escapes of unreserved characters (ALPHA,
// DIGIT, "-", ".", "_", "~") in seg and upper-cases the others.
func decodeUnreserved(seg string) string {
	if strings.IndexByte(seg, '%') < 0 {
		return seg
	}
	var b strings.Builder
	for i := 0; i < len(seg); i++ {
		if seg[i] == '%' && i+2 < len(seg) {
			if c, ok := unhex(seg[i+1], seg[i+2]); ok {
				if isUnreserved(c) {
					b.WriteByte(c)
				} else {
					b.WriteByte('%')
					b.WriteString(strings.ToUpper(seg[i+1 : i+3]))
				}
				i += 2
				continue
			}
		}
		b.WriteByte(seg[i])
	}
	return b.String()
}

func isUnreserved(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '.' || c == '_' || c == '~'
}

func unhex(a, b byte) (byte, bool) {
	x, ok1 := hexval(a)
	y, ok2 := hexval(b)
	return x<<4 | y, ok1 && ok2
}

func hexval(c byte) (byte, bool) {
	switch {
	case '0' <= c && c <= '9':
		return c - '0', true
	case 'a' <= c && c <= 'f':
		return c - 'a' + 10, true
	case 'A' <= c && c <= 'F':
		return c - 'A' + 10, true
	}
	return 0, false
}
