package approvals

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"

	"github.com/approval-gateway/gateway/module/identity"
	"github.com/approval-gateway/gateway/module/inspect"
	"github.com/approval-gateway/gateway/module/record"
	jsonpatch "github.com/evanphx/json-patch/v5"
	"github.com/wI2L/jsondiff"
)

// Change preview: what a parked change will do to its target, for the
// requester and the approvers to see before they decide. The target's
// current state is read with a GET of the same target through the next
// handler, with the caller's own Authorization (so the backend shows
// each caller what it would show them), and never stored.

// CodeNoPreview: the call has no previewable effect (a POST, or a body
// that is not JSON).
const CodeNoPreview = "no_preview"

// maxPreviewBody bounds the current state read for a preview.
const maxPreviewBody = 1 << 20

// Preview is the answer of the preview call.
type Preview struct {
	Current  PreviewState   `json:"current"`
	Proposed any            `json:"proposed"`
	Patch    jsondiff.Patch `json:"patch"`
}

// PreviewState is the target's state as the backend answered.
type PreviewState struct {
	Status int `json:"status"`
	Body   any `json:"body"`
}

// preview answers GET /requests/{id}/preview for a party to the request.
func (s *Service) preview(w http.ResponseWriter, r *http.Request, who *identity.Identity) {
	next, _ := r.Context().Value(nextKey{}).(Next)
	p, err := s.Preview(r, who, r.PathValue("id"), r.Header.Get("Authorization"), next)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, p)
}

// Preview computes the preview of request id for who, reading the target
// through next with auth as its Authorization.
func (s *Service) Preview(r *http.Request, who *identity.Identity, id, auth string, next Next) (*Preview, error) {
	rec, body, err := s.load(r, who, id)
	if err != nil {
		return nil, err
	}
	method := rec.Operation.Method
	var parked any
	if method == http.MethodPut || method == http.MethodPatch {
		if json.Unmarshal(body, &parked) != nil {
			return nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "the parked body is not JSON: there is no change to preview")
		}
	} else if method != http.MethodDelete {
		return nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "a "+method+"'s effect is the backend's to decide: previews cover PUT, PATCH and DELETE")
	}
	if rec.Operation.WireMethod != "" || inspect.QueryMayOverride(rec.Operation.RawQuery) {
		// A GET of that target could be another method at the backend, on
		// the previewer's token: no read is sent.
		return nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "the call names a method override: reading its target could do more than read")
	}
	cur, raw, err := s.current(r, rec, auth, next)
	if err != nil {
		return nil, err
	}
	p := &Preview{Current: cur}
	switch method {
	case http.MethodPut:
		p.Proposed = parked
	case http.MethodPatch:
		if cur.Status/100 != 2 {
			return p, nil // nothing to merge into
		}
		merged, err := applyPatch(rec, raw, body)
		if err != nil {
			return nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "the parked body cannot be applied to the current state: "+err.Error())
		}
		if err := json.Unmarshal(merged, &p.Proposed); err != nil {
			return nil, err
		}
	}
	if cur.Status/100 == 2 {
		if p.Patch, err = jsondiff.Compare(cur.Body, p.Proposed); err != nil {
			return nil, err
		}
		if p.Patch == nil {
			p.Patch = jsondiff.Patch{}
		}
	}
	return p, nil
}

// applyPatch applies a parked PATCH body to the current state: as RFC 6902
// operations when it was sent as application/json-patch+json, else as a
// JSON merge patch (RFC 7396).
func applyPatch(rec *record.Record, current, body []byte) ([]byte, error) {
	if mt, _, _ := mime.ParseMediaType(rec.Operation.Headers.Get("Content-Type")); mt == "application/json-patch+json" {
		ops, err := jsonpatch.DecodePatch(body)
		if err != nil {
			return nil, err
		}
		return ops.Apply(current)
	}
	return jsonpatch.MergePatch(current, body)
}

// current reads the target's state: a GET of the stored target through
// next, with the caller's Authorization and nothing else of theirs.
func (s *Service) current(r *http.Request, rec *record.Record, auth string, next Next) (PreviewState, []byte, error) {
	if next == nil {
		return PreviewState{}, nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "no backend to read the current state from")
	}
	get, err := s.replayRequest(r, rec, nil, auth)
	if err != nil {
		return PreviewState{}, nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "the target cannot be read: "+err.Error())
	}
	get.Method = http.MethodGet
	get.Header = http.Header{"Accept": {"application/json"}}
	if auth != "" {
		get.Header.Set("Authorization", auth)
	}
	out := &bufferWriter{h: http.Header{}}
	if err := next(out, get); err != nil && out.status == 0 {
		return PreviewState{}, nil, fail(http.StatusBadGateway, CodeReplayFailed, "the backend could not be reached to read the current state")
	}
	if out.over {
		return PreviewState{}, nil, fail(http.StatusUnprocessableEntity, CodeNoPreview, "the current state is too large to preview")
	}
	if out.status == 0 {
		out.status = http.StatusOK
	}
	raw := out.buf.Bytes()
	st := PreviewState{Status: out.status}
	if json.Unmarshal(raw, &st.Body) != nil {
		st.Body = string(bytes.TrimSpace(raw))
	}
	return st, raw, nil
}

// bufferWriter keeps an answer, up to maxPreviewBody bytes.
type bufferWriter struct {
	h      http.Header
	status int
	buf    bytes.Buffer
	over   bool
}

func (b *bufferWriter) Header() http.Header { return b.h }

func (b *bufferWriter) WriteHeader(code int) {
	if b.status == 0 && code >= 200 {
		b.status = code
	}
}

func (b *bufferWriter) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	if b.buf.Len()+len(p) > maxPreviewBody {
		b.over = true
		return 0, errors.New("the answer is too large to preview")
	}
	return b.buf.Write(p)
}

// PreviewRow is one field of the change, for people: its JSON pointer,
// how it changes (added, removed, changed) and its values before and
// after, as JSON.
type PreviewRow struct {
	Field, Kind, Current, Proposed string
}

// Rows are the patch's changes field by field.
func (p *Preview) Rows() []PreviewRow {
	var out []PreviewRow
	for _, op := range p.Patch {
		row := PreviewRow{Field: op.Path}
		if row.Field == "" {
			row.Field = "(the whole object)"
		}
		switch op.Type {
		case jsondiff.OperationAdd:
			row.Kind, row.Proposed = "added", asJSON(op.Value)
		case jsondiff.OperationRemove:
			row.Kind, row.Current = "removed", asJSON(pointer(p.Current.Body, op.Path))
		default:
			row.Kind, row.Current, row.Proposed = "changed", asJSON(pointer(p.Current.Body, op.Path)), asJSON(op.Value)
		}
		out = append(out, row)
	}
	return out
}

func asJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// pointer is the value at JSON pointer ptr (RFC 6901) in v, or nil.
func pointer(v any, ptr string) any {
	if ptr == "" {
		return v
	}
	for _, tok := range strings.Split(ptr[1:], "/") {
		tok = strings.NewReplacer("~1", "/", "~0", "~").Replace(tok)
		switch x := v.(type) {
		case map[string]any:
			v = x[tok]
		case []any:
			i, err := strconv.Atoi(tok)
			if err != nil || i < 0 || i >= len(x) {
				return nil
			}
			v = x[i]
		default:
			return nil
		}
	}
	return v
}
