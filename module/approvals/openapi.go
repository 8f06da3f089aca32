package approvals

import (
	"bytes"
	"crypto/sha256"
	_ "embed"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// openAPITemplate is the OpenAPI 3.1 document of the approval API, written
// by hand beside the route table; its one server is the default prefix.
//
//go:embed openapi.json
var openAPITemplate []byte

// openAPIDoc is the document as this gateway serves it: its server is the
// configured prefix.
type openAPIDoc struct {
	body []byte
	etag string
}

// newOpenAPIDoc builds the served document for prefix: the template with
// its server's url set to prefix, compacted, and its entity tag.
func newOpenAPIDoc(prefix string) (openAPIDoc, error) {
	dec := json.NewDecoder(bytes.NewReader(openAPITemplate))
	if t, err := dec.Token(); err != nil || t != json.Delim('{') {
		return openAPIDoc{}, errors.New("openapi.json is not a JSON object")
	}
	var out bytes.Buffer
	out.WriteByte('{')
	for dec.More() {
		k, err := dec.Token()
		if err != nil {
			return openAPIDoc{}, fmt.Errorf("reading openapi.json: %w", err)
		}
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return openAPIDoc{}, fmt.Errorf("reading openapi.json: %w", err)
		}
		if k == "servers" {
			var servers []map[string]any
			if err := json.Unmarshal(v, &servers); err != nil || len(servers) != 1 {
				return openAPIDoc{}, errors.New("openapi.json must name one server")
			}
			servers[0]["url"] = prefix
			if v, err = json.Marshal(servers); err != nil {
				return openAPIDoc{}, err
			}
		}
		if out.Len() > 1 {
			out.WriteByte(',')
		}
		key, _ := json.Marshal(k)
		out.Write(key)
		out.WriteByte(':')
		out.Write(v)
	}
	out.WriteByte('}')
	var body bytes.Buffer
	if err := json.Compact(&body, out.Bytes()); err != nil {
		return openAPIDoc{}, fmt.Errorf("reading openapi.json: %w", err)
	}
	sum := sha256.Sum256(body.Bytes())
	return openAPIDoc{body: body.Bytes(), etag: `"` + hex.EncodeToString(sum[:16]) + `"`}, nil
}

// openAPI serves the OpenAPI document, without a token: revalidated with
// its entity tag (a gateway upgrade may change it).
func (s *Service) openAPI(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Cache-Control", "no-cache")
	h.Set("ETag", s.doc.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	if etagMatch(r.Header.Get("If-None-Match"), s.doc.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(s.doc.body)
}

// etagMatch reports whether an If-None-Match header names etag (weakly,
// as RFC 9110 compares for If-None-Match), or is "*".
func etagMatch(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}
