package inspect

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"net/url"
	"unicode/utf8"
)

// parseURLEncoded parses an application/x-www-form-urlencoded body. A body
// holding JSON is refused: declared a form, it is odd fields to the policy,
// while backends that ignore the content type (many Go and Java handlers)
// execute the JSON.
func parseURLEncoded(b []byte) (url.Values, error) {
	// A raw "{" (browsers escape it) or a leading "[" is JSON, or part of
	// it, that backends ignoring the type would find: refused.
	if t := bytes.TrimSpace(b); bytes.IndexByte(t, '{') >= 0 || (len(t) > 0 && t[0] == '[') {
		return nil, invalidBody("the body is declared a form (application/x-www-form-urlencoded) but holds JSON, which backends read differently; send JSON with Content-Type: application/json, or escape { and [ in form values")
	}
	q, err := url.ParseQuery(string(b))
	if err != nil {
		return nil, invalidBody("the form body does not parse (%v), so the policy could not see all of it", err)
	}
	return q, nil
}

// parseMultipart parses a multipart/form-data body; a file's content is a
// value like any field's. readable is false when a part is not UTF-8 text
// (or is transfer-encoded), which policies then cannot read.
func parseMultipart(b []byte, boundary string) (q url.Values, readable bool, err error) {
	if boundary == "" {
		return nil, false, invalidBody("the multipart body has no boundary parameter")
	}
	// Text before the first boundary (a preamble, which parsers skip) or
	// after the last could hold JSON that a backend ignoring the type
	// finds: refused.
	delim := []byte("--" + boundary)
	first := bytes.Index(b, delim)
	if first < 0 || len(bytes.TrimSpace(b[:first])) > 0 {
		return nil, false, invalidBody("the multipart body has text before its first boundary")
	}
	if end := bytes.LastIndex(b, append(delim, '-', '-')); end < 0 || len(bytes.TrimSpace(b[end+len(delim)+2:])) > 0 {
		return nil, false, invalidBody("the multipart body has no closing boundary, or text after it")
	}
	mr := multipart.NewReader(bytes.NewReader(b), boundary)
	q = url.Values{}
	readable = true
	for n := 0; ; n++ {
		if n > MaxFormParts {
			return nil, false, invalidBody("the multipart body has more than %d parts", MaxFormParts)
		}
		p, err := mr.NextRawPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, false, invalidBody("the multipart body does not parse: %v", err)
		}
		if _, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition")); err != nil || params["name"] == "" {
			return nil, false, invalidBody("a part of the multipart body has no Content-Disposition with a name that parses")
		}
		v, err := io.ReadAll(p)
		if err != nil {
			return nil, false, invalidBody("the multipart body does not parse: %v", err)
		}
		if !utf8.Valid(v) || p.Header.Get("Content-Transfer-Encoding") != "" || len(p.Header.Values("Content-Type")) > 1 {
			readable = false
		}
		q[p.FormName()] = append(q[p.FormName()], string(v))
	}
	return q, readable, nil
}

// fields turns form values into the policy's {name: [values]}.
func fields(q url.Values) map[string]any {
	out := make(map[string]any, len(q))
	for k, vs := range q {
		arr := make([]any, len(vs))
		for i, v := range vs {
			arr[i] = v
		}
		out[k] = arr
	}
	return out
}
