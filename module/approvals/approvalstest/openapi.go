package approvalstest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
)

// Every call a test makes to the approval API through a harness's gateway
// (under {prefix}/api/v1, and {prefix}/healthz) is checked against the
// OpenAPI document the gateway serves: the call must be one the document
// names, and the answer one it describes for that call (status, headers,
// body). A call the document finds invalid (no token, a bad parameter)
// must be refused with a 4xx it lists (401 for a missing token). So the
// document and the code cannot drift.

// maxChecked bounds the copy of an answer kept for checking its body.
const maxChecked = 8 << 20

// contract is the OpenAPI document of the approval API, loaded, validated
// and routed once per test binary.
type contract struct {
	// doc is the document; its paths are relative to the API prefix.
	doc    *openapi3.T
	router routers.Router
}

var (
	contractOnce sync.Once
	theContract  *contract
	contractErr  error
)

// contractOf returns the OpenAPI document that svc serves, loaded and
// validated with kin-openapi, once per test binary (every gateway serves
// the same document, but for its own prefix).
func contractOf(svc *approvals.Service) (*contract, error) {
	contractOnce.Do(func() {
		theContract, contractErr = loadContract(svc)
	})
	return theContract, contractErr
}

func loadContract(svc *approvals.Service) (*contract, error) {
	rec := httptest.NewRecorder()
	if err := svc.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, svc.Prefix+"/api/v1/openapi.json", nil), nil); err != nil {
		return nil, err
	}
	if rec.Code != http.StatusOK {
		return nil, fmt.Errorf("GET %s/api/v1/openapi.json answered %d: %s", svc.Prefix, rec.Code, rec.Body)
	}
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(rec.Body.Bytes())
	if err != nil {
		return nil, fmt.Errorf("loading the OpenAPI document: %w", err)
	}
	if err := doc.Validate(loader.Context, openapi3.EnableSchemaFormatValidation()); err != nil {
		return nil, fmt.Errorf("the OpenAPI document is not valid: %w", err)
	}
	// Calls are routed by their path below the prefix, the document's
	// server: each harness may have its own prefix.
	doc.Servers = nil
	router, err := gorillamux.NewRouter(doc)
	if err != nil {
		return nil, err
	}
	// The event stream is declared as text; its body is not checked.
	openapi3filter.RegisterBodyDecoder("text/event-stream", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		return string(b), err
	})
	// JSON lines (the audit export) are declared as text: each line must be
	// a JSON object.
	openapi3filter.RegisterBodyDecoder("application/x-ndjson", func(r io.Reader, _ http.Header, _ *openapi3.SchemaRef, _ openapi3filter.EncodingFn) (any, error) {
		b, err := io.ReadAll(r)
		for line := range strings.Lines(string(b)) {
			var obj map[string]any
			if err == nil {
				err = json.Unmarshal([]byte(line), &obj)
			}
		}
		return string(b), err
	})
	return &contract{doc: doc, router: router}, nil
}

// Undocumented declares that the test calls method path (under the API
// prefix, without query) on purpose though the OpenAPI document does not
// name it: the answer must then be the document's NotFound response. Any
// other call that the document does not know fails the test.
func (h *Harness) Undocumented(method, path string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.undocumented == nil {
		h.undocumented = map[string]bool{}
	}
	h.undocumented[method+" "+path] = true
}

func (h *Harness) isUndocumented(method, path string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.undocumented[method+" "+path]
}

// checked wraps the gateway's handler: each API call and its answer are
// checked against the contract.
func (h *Harness) checked(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		prefix := h.Svc.Prefix
		p := r.URL.Path
		if p != prefix+"/healthz" && p != prefix+"/api/v1" && !strings.HasPrefix(p, prefix+"/api/v1/") {
			next.ServeHTTP(w, r)
			return
		}
		call, err := newCall(r, prefix)
		if err != nil {
			h.T.Errorf("OpenAPI: %s %s: %v", r.Method, r.URL.RequestURI(), err)
			next.ServeHTTP(w, r)
			return
		}
		tw := &teeWriter{ResponseWriter: w}
		tw.onHeader = func(status int, header http.Header) {
			// A stream is checked as it starts: it ends when the client
			// goes, perhaps with the test.
			if isEventStream(header) {
				tw.done = true
				h.check(call, status, header, nil, false)
			}
		}
		next.ServeHTTP(tw, r)
		if tw.status == 0 {
			tw.WriteHeader(http.StatusOK) // as net/http answers a handler that wrote nothing
		}
		if !tw.done {
			h.check(call, tw.status, tw.header, tw.buf.Bytes(), tw.truncated)
		}
	})
}

// call is an API call as the contract sees it: its path below the prefix,
// and its body.
type call struct {
	method, path string // as sent
	target       string // as sent, for messages
	req          *http.Request
	body         []byte
	bodyTooLarge bool
}

// newCall copies what the contract needs of r, and leaves r's body
// readable.
func newCall(r *http.Request, prefix string) (*call, error) {
	c := &call{method: r.Method, path: r.URL.Path, target: r.URL.RequestURI()}
	if r.Body != nil && r.Body != http.NoBody {
		b, err := io.ReadAll(io.LimitReader(r.Body, maxChecked+1))
		if err != nil {
			return nil, err
		}
		r.Body = struct {
			io.Reader
			io.Closer
		}{io.MultiReader(bytes.NewReader(b), r.Body), r.Body}
		c.body, c.bodyTooLarge = b, len(b) > maxChecked
	}
	rr := r.Clone(context.Background())
	rr.URL.Path = strings.TrimPrefix(r.URL.Path, prefix)
	rr.URL.RawPath = ""
	if r.URL.RawPath != "" {
		rr.URL.RawPath = strings.TrimPrefix(r.URL.RawPath, prefix)
	}
	rr.RequestURI = ""
	rr.Header = r.Header.Clone()
	if len(c.body) > 0 && rr.Header.Get("Content-Type") == "" {
		// The API reads the bodies it takes as JSON whatever their
		// declared type, as its document says.
		rr.Header.Set("Content-Type", "application/json")
	}
	c.req = rr
	return c, nil
}

func (c *call) request() *http.Request {
	rr := c.req.Clone(context.Background())
	rr.Body = io.NopCloser(bytes.NewReader(c.body))
	rr.ContentLength = int64(len(c.body))
	if len(c.body) == 0 {
		rr.Body = http.NoBody
	}
	return rr
}

// check fails the test unless the answer (status, header, body; body nil
// for a stream, whose body is not checked) is one the contract gives c.
func (h *Harness) check(c *call, status int, header http.Header, body []byte, truncated bool) {
	if truncated {
		h.T.Logf("OpenAPI: %s %s answered %d with over %d bytes: its body is not checked", c.method, c.target, status, maxChecked)
	}
	if err := h.contract.check(c, status, header, body, truncated, h.isUndocumented); err != nil {
		h.T.Errorf("OpenAPI: %s %s answered %d: %v", c.method, c.target, status, err)
	}
}

// check reports how an answer breaks the contract, or nil.
func (k *contract) check(c *call, status int, header http.Header, body []byte, truncated bool, undocumented func(method, path string) bool) error {
	req := c.request()
	if undocumented(c.method, c.path) {
		// Declared off the document (another spelling of a route among
		// them): only NotFound is an answer.
		return k.checkAnswer(k.syntheticRoute(req, http.StatusNotFound, "NotFound"), nil, status, header, body, truncated)
	}
	route, params, err := k.router.FindRoute(asGet(req))
	switch {
	case errors.Is(err, routers.ErrPathNotFound):
		return errors.New("the OpenAPI document has no such path")
	case errors.Is(err, routers.ErrMethodNotAllowed):
		if err := k.checkAllow(req, header.Get("Allow")); err != nil {
			return err
		}
		return k.checkAnswer(k.syntheticRoute(req, http.StatusMethodNotAllowed, "MethodNotAllowed"), nil, status, header, body, truncated)
	case err != nil:
		return err
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerAuth, RejectWhenRequestBodyNotSpecified: true, ExcludeRequestBody: c.bodyTooLarge}}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if route.Operation.OperationID == "completeRequest" && header.Get(approvals.RequestIDHeader) != "" {
		// The backend's own answer, relayed: its status is the backend's,
		// its body whatever the backend sent.
		only := openapi3.NewResponsesWithCapacity(1)
		only.Set("default", route.Operation.Responses.Default())
		op := *route.Operation
		op.Responses = only
		r := *route
		r.Operation = &op
		in.Route = &r
		body = nil
	}
	if err := k.checkAnswer(in.Route, in, status, header, body, truncated); err != nil {
		return err
	}
	var sec *openapi3filter.SecurityRequirementsError
	switch {
	case reqErr == nil:
		return nil
	case errors.As(reqErr, &sec):
		if status != http.StatusUnauthorized {
			return fmt.Errorf("a call without a bearer token was not refused with 401: %v", reqErr)
		}
	case status < 400 || status > 499:
		return fmt.Errorf("a call that the document does not allow was not refused with a 4xx: %v", reqErr)
	}
	return nil
}

// asGet is a HEAD request as the GET it is answered as (without a body),
// for routing; other requests as they are.
func asGet(req *http.Request) *http.Request {
	if req.Method != http.MethodHead {
		return req
	}
	get := req.Clone(context.Background())
	get.Method = http.MethodGet
	return get
}

// checkAnswer checks status, header and body (nil: not checked) against
// route's operation.
func (k *contract) checkAnswer(route *routers.Route, in *openapi3filter.RequestValidationInput, status int, header http.Header, body []byte, truncated bool) error {
	if in == nil {
		in = &openapi3filter.RequestValidationInput{Request: &http.Request{Method: route.Method}, Route: route}
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: status, Header: header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: body == nil || truncated}}
	if isEventStream(header) {
		// The body of an event stream is not checked, but its type must be
		// the one the document names.
		res := route.Operation.Responses.Status(status)
		if res == nil || res.Value.Content.Get("text/event-stream") == nil {
			return errors.New("an event stream where the document names none")
		}
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

// syntheticRoute is the route of a call the document does not list, whose
// answer must be the document's response name with status.
func (k *contract) syntheticRoute(req *http.Request, status int, name string) *routers.Route {
	res := k.doc.Components.Responses[name]
	op := &openapi3.Operation{OperationID: name, Responses: openapi3.NewResponses(openapi3.WithStatus(status, res))}
	op.Responses.Delete("default")
	return &routers.Route{Spec: k.doc, Path: req.URL.Path, Method: req.Method, Operation: op}
}

// checkAllow checks the Allow header of a 405 against the methods that the
// document gives the path (HEAD with GET, as net/http routes it).
func (k *contract) checkAllow(req *http.Request, allow string) error {
	var want []string
	for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions, http.MethodTrace} {
		probe := req.Clone(context.Background())
		probe.Method = m
		if _, _, err := k.router.FindRoute(probe); err == nil {
			want = append(want, m)
			if m == http.MethodGet {
				want = append(want, http.MethodHead)
			}
		}
	}
	var got []string
	for _, m := range strings.Split(allow, ",") {
		if m = strings.TrimSpace(m); m != "" {
			got = append(got, m)
		}
	}
	slices.Sort(want)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		return fmt.Errorf("Allow is %q; the document gives the path %s", allow, strings.Join(want, ", "))
	}
	return nil
}

// bearerAuth checks the document's security scheme: a bearer token is
// sent (whether it is valid is the gateway's to say, with a 401 the
// document lists).
func bearerAuth(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("unknown security scheme %s", in.SecuritySchemeName)
	}
	scheme, token, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

func isEventStream(h http.Header) bool {
	return strings.HasPrefix(h.Get("Content-Type"), "text/event-stream")
}

// teeWriter passes an answer on while keeping its status, its header as
// written and a bounded copy of its body; flushes go through, so a stream
// still streams.
type teeWriter struct {
	http.ResponseWriter
	status    int
	header    http.Header // as sent
	buf       bytes.Buffer
	truncated bool
	onHeader  func(status int, header http.Header)
	done      bool
}

func (w *teeWriter) WriteHeader(code int) {
	if w.status == 0 && code >= 200 {
		w.status, w.header = code, w.Header().Clone()
		w.onHeader(code, w.header)
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *teeWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	room := maxChecked - w.buf.Len()
	w.buf.Write(b[:max(0, min(room, len(b)))])
	if len(b) > room {
		w.truncated = true
	}
	return w.ResponseWriter.Write(b)
}

// Flush passes flushes through (the event stream flushes each event).
func (w *teeWriter) Flush() {
	if w.status == 0 {
		w.WriteHeader(http.StatusOK)
	}
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (w *teeWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
