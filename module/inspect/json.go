package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/go-json-experiment/json/jsontext"
)

// ParseJSON parses one JSON text strictly: valid UTF-8, no member name
// twice in an object (parsers disagree on which one wins; RFC 7493
// forbids it), at most MaxJSONDepth levels deep, nothing after the value.
// Numbers are kept exact as json.Number; objects are map[string]any and
// arrays []any.
func ParseJSON(b []byte) (any, error) {
	d := jsontext.NewDecoder(bytes.NewReader(b), jsontext.AllowDuplicateNames(false), jsontext.AllowInvalidUTF8(false))
	v, err := readValue(d, 0)
	if err != nil {
		return nil, err
	}
	if _, err := d.ReadToken(); err != io.EOF {
		if err == nil {
			return nil, errors.New("something follows the JSON value")
		}
		return nil, err
	}
	return v, nil
}

// errTooDeep is a JSON value nested past MaxJSONDepth.
var errTooDeep = fmt.Errorf("nested more than %d levels deep", MaxJSONDepth)

// readValue reads one value whose containers sit depth levels deep.
func readValue(d *jsontext.Decoder, depth int) (any, error) {
	tok, err := d.ReadToken()
	if err != nil {
		if err == io.EOF {
			return nil, io.ErrUnexpectedEOF
		}
		return nil, err
	}
	switch tok.Kind() {
	case 'n':
		return nil, nil
	case 't', 'f':
		return tok.Bool(), nil
	case '"':
		return tok.String(), nil
	case '0':
		return json.Number(tok.String()), nil
	case '{', '[':
		if depth >= MaxJSONDepth {
			return nil, errTooDeep
		}
	}
	switch tok.Kind() {
	case '{':
		obj := map[string]any{}
		for d.PeekKind() != '}' {
			k, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			name := k.String()
			v, err := readValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			obj[name] = v
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		return obj, nil
	case '[':
		arr := []any{}
		for d.PeekKind() != ']' {
			v, err := readValue(d, depth+1)
			if err != nil {
				return nil, err
			}
			arr = append(arr, v)
		}
		if _, err := d.ReadToken(); err != nil {
			return nil, err
		}
		return arr, nil
	}
	return nil, errors.New("unexpected JSON token")
}
