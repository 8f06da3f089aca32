package inspect

import (
	"bytes"
	"errors"
	"io"
	"mime/multipart"
	"net/url"
	"unicode/utf8"
)

// parseURLEncoded parses an application/x-www-form-urlencoded body. A body that is a JSON object or array is refused:
// declared a form, it is one odd field to the policy, while backends that
// ignore the content type (many Go and Java handlers) execute it as JSON.
func parseURLEncoded(b []byte) (url.Values, error) {
	if t := bytes.TrimSpace(b); len(t) > 0 && (t[0] == '{' || t[0] == '[') {
		if _, err := ParseJSON(t); err == nil {
			return nil, invalidBody("the body is declared a form (application/x-www-form-urlencoded) but holds JSON, which backends read differently; send it with Content-Type: application/json")
		}
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
