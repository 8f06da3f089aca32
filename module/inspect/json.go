package inspect

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/go-json-experiment/json/jsontext"
	"golang.org/x/text/cases"
)

// ParseJSON parses one JSON text strictly: valid UTF-8, no member name
// twice in an object (parsers disagree on which one wins; RFC 7493
// forbids it), no two member names that differ only in case (Go's
// encoding/json, among others, matches names case-insensitively, so
// {"wiped":false,"Wiped":true} wipes), at most MaxJSONDepth levels deep,
// nothing after the value.
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
		n := tok.String()
		if !floatFaithful(n) {
			f, _ := strconv.ParseFloat(n, 64)
			return nil, fmt.Errorf("the number %s is not one backends read alike (a float64 makes it %v); send it as a string", n, f)
		}
		return json.Number(n), nil
	case '{', '[':
		if depth >= MaxJSONDepth {
			return nil, errTooDeep
		}
	}
	switch tok.Kind() {
	case '{':
		obj := map[string]any{}
		var folded map[string]string // the names so far by their case folding
		for d.PeekKind() != '}' {
			k, err := d.ReadToken()
			if err != nil {
				return nil, err
			}
			name := k.String()
			if len(obj) > 0 {
				if folded == nil {
					folded = make(map[string]string, 4)
					for n := range obj {
						folded[foldName(n)] = n
					}
				}
				f := foldName(name)
				if other, ok := folded[f]; ok {
					return nil, fmt.Errorf("member names %q and %q differ only in case, which some parsers take for one", other, name)
				}
				folded[f] = name
			}
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

// foldName is the case folding of a member name.
func foldName(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return cases.Fold().String(s)
		}
	}
	return strings.ToLower(s)
}

// floatFaithful reports whether the JSON number n is read alike by every
// backend: JavaScript and many parsers read numbers as float64, Go's into
// int64 or exactly, so a number a float64 cannot hold exactly in its
// shortest form (9007199254740993, 99.99999999999999999, 1e400) means
// different things to them, and to the policy, which reads it exactly.
func floatFaithful(n string) bool {
	digits := 0
	for i := 0; i < len(n); i++ {
		switch c := n[i]; {
		case '0' <= c && c <= '9':
			digits++
		case c == 'e' || c == 'E':
			digits = 100 // an exponent: take the slow path
		}
	}
	if digits <= 15 {
		return true // 15 significant digits always survive a float64
	}
	f, err := strconv.ParseFloat(n, 64)
	if err != nil {
		return false
	}
	exact, ok := new(big.Rat).SetString(n)
	if !ok {
		return false
	}
	short, _ := new(big.Rat).SetString(strconv.FormatFloat(f, 'g', -1, 64))
	return short != nil && exact.Cmp(short) == 0
}
