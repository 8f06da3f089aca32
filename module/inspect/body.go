package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Body is a call's body: the bytes as sent (forwarded, stored and replayed
// unchanged) and what a policy reads of them.
type Body struct {
	// Raw is the body as sent, content codings and all.
	Raw []byte
	// MediaType is the Content-Type's media type in lower case, without
	// parameters; "" when the call has none.
	MediaType string
	// Value is what policies see: the parsed JSON, or a form's fields as
	// {name: [values]}; nil when the body is empty or of a type the gateway
	// does not parse (then policies see its size and hash only).
	Value any
	// SHA256 is the hex SHA-256 of Raw.
	SHA256 string
	// form holds a form's fields, also when Value is nil because a part
	// is not text: _method is looked for there.
	form url.Values
}

// IsForm reports whether the body is an HTML form (URL-encoded or
// multipart), the kind that can carry a _method field.
func (b *Body) IsForm() bool { return b.form != nil }

// IsFormType reports whether a request's Content-Type declares a form,
// whose body must be read for a _method field even when no policy reads
// bodies.
func IsFormType(h http.Header) bool {
	for _, v := range h.Values("Content-Type") {
		mt, _, _ := strings.Cut(v, ";")
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "application/x-www-form-urlencoded", "multipart/form-data":
			return true
		}
	}
	return false
}

// MediaType returns the media type of a Content-Type header value, lower
// case, without parameters; it does not validate it.
func MediaType(h http.Header) string {
	mt, _, _ := strings.Cut(h.Get("Content-Type"), ";")
	return strings.ToLower(strings.TrimSpace(mt))
}

// IsJSON reports whether a media type is JSON: application/json or a
// structured syntax suffix +json (RFC 6839), such as
// application/merge-patch+json.
func IsJSON(mediaType string) bool {
	return mediaType == "application/json" || strings.HasSuffix(mediaType, "+json")
}

// ReadBody reads a body the way backends will: its content codings undone
// (bounded by o.MaxBody), its charset decoded, then parsed by its declared
// type. A body declared JSON must parse strictly (ParseJSON); a form must
// parse; a body without a Content-Type is read as JSON if it is JSON. Other
// types are not parsed: policies see their size and hash.
func ReadBody(raw []byte, h http.Header, o Options) (*Body, error) {
	sum := sha256.Sum256(raw)
	b := &Body{Raw: raw, SHA256: hex.EncodeToString(sum[:])}
	cts := h.Values("Content-Type")
	if len(cts) > 1 {
		return nil, invalidBody("the call has %d Content-Type headers; backends would read different ones", len(cts))
	}
	var params map[string]string
	if len(cts) == 1 && strings.TrimSpace(cts[0]) != "" {
		mt, p, err := mime.ParseMediaType(cts[0])
		if err != nil {
			if len(raw) == 0 {
				b.MediaType = MediaType(h)
				return b, nil
			}
			return nil, invalidBody("the Content-Type header does not parse: %v", err)
		}
		b.MediaType, params = mt, p
	}
	if len(raw) == 0 {
		return b, nil
	}
	text, err := Decode(raw, Codings(h), o.MaxBody)
	if err != nil {
		return nil, err
	}
	charset := charsetOf(params)
	switch mt := b.MediaType; {
	case IsJSON(mt):
		if text, err = toUTF8(text, charset); err != nil {
			return nil, err
		}
		if len(text) == 0 {
			return b, nil
		}
		if b.Value, err = ParseJSON(text); err != nil {
			return nil, invalidBody("the body is declared JSON but is not (strictly: no repeated member names, at most %d levels deep): %v", MaxJSONDepth, err)
		}
	case mt == "application/x-www-form-urlencoded":
		if charset != "" && charset != "utf-8" && charset != "utf8" {
			return nil, unsupported("the form's charset %q is not one the gateway reads (UTF-8)", charset)
		}
		if b.form, err = parseURLEncoded(text); err != nil {
			return nil, err
		}
		b.Value = fields(b.form)
	case mt == "multipart/form-data":
		form, readable, err := parseMultipart(text, params["boundary"])
		if err != nil {
			return nil, err
		}
		b.form = form
		if readable {
			b.Value = fields(form)
		}
	case mt == "":
		// No declared type: backends that ignore the type (many do) read
		// JSON; show it when it is JSON.
		if u, err := toUTF8(text, ""); err == nil && len(bytes.TrimSpace(u)) > 0 {
			if v, err := ParseJSON(u); err == nil {
				b.Value = v
			}
		}
	}
	return b, nil
}
