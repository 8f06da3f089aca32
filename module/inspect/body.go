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
	// overrides are the values of the body's _method fields (Override).
	overrides []string
}

// MayOverride reports whether a body with these headers may carry a
// _method field that some backend honours: a form, JSON (Laravel reads
// JSON input as request fields), no declared type (Rack reads it as a
// form), or a Content-Type that does not parse cleanly (PHP and Rack cut
// it at a comma). Such a body is read even when no policy reads bodies,
// and even on a method that is not judged. Any other type streams.
func MayOverride(h http.Header) bool {
	cts := h.Values("Content-Type")
	if len(cts) != 1 {
		return true
	}
	mt, _, err := mime.ParseMediaType(cts[0])
	return err != nil || isFormType(mt) || IsJSON(mt)
}

func isFormType(mt string) bool {
	return mt == "application/x-www-form-urlencoded" || mt == "multipart/form-data"
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
			return nil, invalidBody("the body is declared JSON but is not (strictly: no repeated member names or names differing only in case, numbers float64 reads alike, at most %d levels deep): %v", MaxJSONDepth, err)
		}
		b.overrides, err = jsonOverrides(b.Value)
		if err != nil {
			return nil, err
		}
	case mt == "application/x-www-form-urlencoded":
		if charset != "" && charset != "utf-8" && charset != "utf8" {
			return nil, unsupported("the form's charset %q is not one the gateway reads (UTF-8)", charset)
		}
		form, err := parseURLEncoded(text)
		if err != nil {
			return nil, err
		}
		b.Value, b.overrides = fields(form), formOverrides(form)
	case mt == "multipart/form-data":
		form, readable, err := parseMultipart(text, params["boundary"])
		if err != nil {
			return nil, err
		}
		if readable {
			b.Value = fields(form)
		}
		b.overrides = formOverrides(form)
	case mt == "":
		// No declared type: backends that ignore the type (many do) read
		// JSON; show it when it is JSON. Rack reads it as a form: look
		// for a _method field there too.
		if u, err := toUTF8(text, ""); err == nil && len(bytes.TrimSpace(u)) > 0 {
			if v, err := ParseJSON(u); err == nil {
				b.Value = v
				if b.overrides, err = jsonOverrides(v); err != nil {
					return nil, err
				}
			}
		}
		if q, _ := url.ParseQuery(string(text)); len(q) > 0 {
			b.overrides = append(b.overrides, formOverrides(q)...)
		}
	}
	return b, nil
}

// formOverrides returns the values of a form's _method fields.
func formOverrides(q url.Values) []string {
	var out []string
	for k, vs := range q {
		if isOverrideField(k) {
			out = append(out, vs...)
		}
	}
	return out
}

// jsonOverrides returns the values of a JSON object's top-level _method
// members; one that is not a string is refused, as no one can say which
// method it asks for.
func jsonOverrides(v any) ([]string, error) {
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, nil
	}
	var out []string
	for k, val := range obj {
		if !isOverrideField(k) {
			continue
		}
		s, ok := val.(string)
		if !ok {
			return nil, refuse(http.StatusBadRequest, CodeMethodOverride, "the body's %s member is not a method", k)
		}
		out = append(out, s)
	}
	return out, nil
}
