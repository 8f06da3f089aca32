package approvals

import (
	"bytes"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/go-json-experiment/json/jsontext"
)

// The body of an action call (approve, reject, cancel, complete) is read
// as strictly as the gateway reads a judged call: what the API records
// must be exactly what was sent.

// CodeUnsupportedMediaType refuses an action body that is not
// application/json (415).
const CodeUnsupportedMediaType = "unsupported_media_type"

// maxActionBody bounds the JSON body of an action call; maxNotes the notes.
const (
	maxActionBody = 64 << 10
	maxNotes      = 4000
)

// actionInput is the JSON body of approve, reject, cancel and complete.
type actionInput struct {
	Notes         string `json:"notes"`
	PayloadSHA256 string `json:"payload_sha256"`
}

// readActionInput reads an action's body. An empty body is no input (the
// action decides whether notes are needed). Any other body must be
// application/json (charset UTF-8 if one is named, no content coding),
// valid UTF-8, and one object of the known members, each once and a
// string: anything else is refused, never read leniently.
func readActionInput(r *http.Request) (actionInput, error) {
	var in actionInput
	body, err := io.ReadAll(io.LimitReader(r.Body, maxActionBody+1))
	switch {
	case err != nil:
		return in, fail(http.StatusBadRequest, CodeBadRequest, "reading the body failed")
	case len(body) > maxActionBody:
		return in, inspect.TooLarge(maxActionBody)
	case len(body) == 0:
		return in, nil
	}
	if err := checkJSONType(r.Header); err != nil {
		return in, err
	}
	if !utf8.Valid(body) {
		return in, fail(http.StatusBadRequest, CodeBadRequest, "the body is not UTF-8")
	}
	members := map[string]*string{"notes": &in.Notes, "payload_sha256": &in.PayloadSHA256}
	if err := readObject(body, members); err != nil {
		return in, fail(http.StatusBadRequest, CodeBadRequest, err.Error()+`; the body is one JSON object like {"notes": "..."}`)
	}
	if utf8.RuneCountInString(in.Notes) > maxNotes {
		return in, fail(http.StatusBadRequest, CodeBadRequest, "notes are limited to "+strconv.Itoa(maxNotes)+" characters")
	}
	return in, nil
}

// checkJSONType accepts one Content-Type of application/json, with no
// charset but UTF-8, and no content coding.
func checkJSONType(h http.Header) error {
	refuse := func(msg string) error { return fail(http.StatusUnsupportedMediaType, CodeUnsupportedMediaType, msg) }
	if ce := h.Values("Content-Encoding"); len(ce) > 0 && !(len(ce) == 1 && strings.EqualFold(strings.TrimSpace(ce[0]), "identity")) {
		return refuse("an action's body is sent without a content coding")
	}
	cts := h.Values("Content-Type")
	if len(cts) != 1 {
		return refuse("an action's body is application/json: send one Content-Type")
	}
	mt, params, err := mime.ParseMediaType(cts[0])
	if err != nil || mt != "application/json" {
		return refuse("an action's body is application/json, not " + strconv.Quote(cts[0]))
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return refuse("an action's body is UTF-8, not " + strconv.Quote(cs))
	}
	return nil
}

// readObject reads b as one JSON object whose members are among into,
// each a string, each once, and nothing after it. Its errors name what
// is wrong.
func readObject(b []byte, into map[string]*string) error {
	dec := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(true))
	tok, err := dec.ReadToken()
	if err != nil || tok.Kind() != '{' {
		return errors.New("the body is not a JSON object")
	}
	seen := map[string]bool{}
	for dec.PeekKind() != '}' {
		name, err := dec.ReadToken()
		if err != nil {
			return errors.New("the body is not valid JSON")
		}
		n := name.String()
		dst, known := into[n]
		switch {
		case !known:
			return errors.New("unknown member " + strconv.Quote(n))
		case seen[n]:
			return errors.New("member " + strconv.Quote(n) + " is repeated")
		}
		seen[n] = true
		val, err := dec.ReadToken()
		if err != nil {
			return errors.New("the body is not valid JSON")
		}
		if val.Kind() != '"' {
			return errors.New("member " + strconv.Quote(n) + " is not a string")
		}
		*dst = val.String()
	}
	if _, err := dec.ReadToken(); err != nil {
		return errors.New("the body is not valid JSON")
	}
	if _, err := dec.ReadToken(); err != io.EOF {
		return errors.New("the body holds more than one JSON value")
	}
	return nil
}
