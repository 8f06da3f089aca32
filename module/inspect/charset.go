package inspect

import (
	"bytes"
	"strings"
	"unicode/utf8"

	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/unicode"
	"golang.org/x/text/encoding/unicode/utf32"
)

var bomUTF8 = []byte{0xef, 0xbb, 0xbf}

// toUTF8 decodes a JSON or text body in charset (a media type's charset
// parameter, lower case, or "") to UTF-8 without a byte order mark, as
// backends that honour the charset (body-parser, Jackson) read it. With no
// charset, a byte order mark or the pattern of zero bytes of RFC 4627
// section 3 says which Unicode encoding it is, as Jackson detects it. A
// charset the gateway does not read is refused.
func toUTF8(b []byte, charset string) ([]byte, error) {
	var enc encoding.Encoding
	switch charset {
	case "", "utf-8", "utf8":
		if charset == "" {
			enc = sniffUnicode(b)
		}
	case "utf-16":
		switch {
		case bytes.HasPrefix(b, []byte{0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe}):
			enc = unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM)
		default:
			return nil, unsupported("the body is declared UTF-16 without a byte order mark, which backends read in different byte orders; send UTF-8, or utf-16le or utf-16be")
		}
	case "utf-16le":
		enc = unicode.UTF16(unicode.LittleEndian, unicode.UseBOM)
	case "utf-16be":
		enc = unicode.UTF16(unicode.BigEndian, unicode.UseBOM)
	case "utf-32":
		switch {
		case bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe, 0, 0}):
			enc = utf32.UTF32(utf32.BigEndian, utf32.ExpectBOM)
		default:
			return nil, unsupported("the body is declared UTF-32 without a byte order mark; send UTF-8")
		}
	case "utf-32le":
		enc = utf32.UTF32(utf32.LittleEndian, utf32.UseBOM)
	case "utf-32be":
		enc = utf32.UTF32(utf32.BigEndian, utf32.UseBOM)
	default:
		return nil, unsupported("the charset %q is not one the gateway reads (UTF-8, UTF-16, UTF-32), so the policy could not read the body", charset)
	}
	if enc != nil {
		out, err := enc.NewDecoder().Bytes(b)
		if err != nil {
			return nil, invalidBody("the body is not valid %s: %v", enc, err)
		}
		b = out
	}
	b = bytes.TrimPrefix(b, bomUTF8)
	if !utf8.Valid(b) {
		return nil, invalidBody("the body is not valid UTF-8")
	}
	return b, nil
}

// sniffUnicode detects UTF-16 and UTF-32 from a byte order mark, or from
// the zeros around the first two characters of a JSON text (RFC 4627
// section 3); nil means UTF-8.
func sniffUnicode(b []byte) encoding.Encoding {
	switch {
	case bytes.HasPrefix(b, []byte{0, 0, 0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe, 0, 0}):
		return utf32.UTF32(utf32.BigEndian, utf32.ExpectBOM)
	case bytes.HasPrefix(b, []byte{0xfe, 0xff}), bytes.HasPrefix(b, []byte{0xff, 0xfe}):
		return unicode.UTF16(unicode.BigEndian, unicode.ExpectBOM)
	case len(b) < 4:
		return nil
	case b[0] == 0 && b[1] == 0 && b[2] == 0 && b[3] != 0:
		return utf32.UTF32(utf32.BigEndian, utf32.IgnoreBOM)
	case b[0] != 0 && b[1] == 0 && b[2] == 0 && b[3] == 0:
		return utf32.UTF32(utf32.LittleEndian, utf32.IgnoreBOM)
	case b[0] == 0 && b[1] != 0:
		return unicode.UTF16(unicode.BigEndian, unicode.IgnoreBOM)
	case b[0] != 0 && b[1] == 0:
		return unicode.UTF16(unicode.LittleEndian, unicode.IgnoreBOM)
	}
	return nil
}

// charsetOf returns a media type's charset parameter, lower case.
func charsetOf(params map[string]string) string {
	return strings.ToLower(strings.TrimSpace(params["charset"]))
}
