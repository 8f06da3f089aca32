// Package inspect reads a call the way a backend will execute it, so that
// the policy judges exactly that: the effective method (method-override
// headers and fields), the path (dot segments, encoded slashes, backslashes,
// duplicate slashes, letter case of escapes), the query, and the body
// (content codings, charsets, byte order marks, JSON, forms).
//
// Where it cannot show the policy faithfully what the backend will do, it
// refuses the call with an *Error carrying the status and code the gateway
// answers; it never hands on a guess. It knows nothing of Caddy, OPA or the
// store.
package inspect

import (
	"fmt"
	"net/http"
)

// Error codes of the public contract that inspecting a call produces.
const (
	CodeMethodOverride      = "method_override"
	CodeInvalidMethod       = "invalid_method"
	CodeAmbiguousPath       = "ambiguous_path"
	CodeInvalidQuery        = "invalid_query"
	CodeUnsupportedEncoding = "unsupported_encoding"
	CodeInvalidBody         = "invalid_body"
	CodeBodyTooLarge        = "body_too_large"
)

// MaxJSONDepth is how deeply a JSON body may nest (objects and arrays);
// deeper is refused. Parsers disagree past their own limits (Go's stops at
// 10,000, V8 goes on), so the gateway sets one far above any admin API's
// payload and refuses what lies beyond it.
const MaxJSONDepth = 64

// MaxFormParts bounds the parts of a multipart body.
const MaxFormParts = 1000

// Options says how strictly calls are read.
type Options struct {
	// MaxBody bounds a body both as sent and once its content codings are
	// decoded (a decompression bomb is a 413, not an out-of-memory).
	MaxBody int64
	// JudgeMethodOverride has the policy judge the method that an override
	// header or _method field asks for (the backend will execute that one);
	// by default such calls are refused.
	JudgeMethodOverride bool
	// JudgeAmbiguousPaths has the policy judge paths with dot segments,
	// encoded slashes, backslashes, semicolons or encoded control bytes,
	// normalized beside the raw path; by default they are refused, since
	// backends resolve them differently.
	JudgeAmbiguousPaths bool
}

// Error is a call the gateway refuses because it cannot show the policy
// faithfully what the backend would execute.
type Error struct {
	Status  int
	Code    string
	Message string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

func refuse(status int, code, format string, args ...any) *Error {
	return &Error{Status: status, Code: code, Message: fmt.Sprintf(format, args...)}
}

func invalidBody(format string, args ...any) *Error {
	return refuse(http.StatusBadRequest, CodeInvalidBody, format, args...)
}

func unsupported(format string, args ...any) *Error {
	return refuse(http.StatusUnsupportedMediaType, CodeUnsupportedEncoding, format, args...)
}

// TooLarge is the refusal of a body over max bytes, as sent or decoded.
func TooLarge(max int64) *Error {
	return refuse(http.StatusRequestEntityTooLarge, CodeBodyTooLarge, "the body exceeds the %d-byte limit", max)
}
