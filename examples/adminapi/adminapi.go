// Package adminapi is an example admin API to put behind the gateway: apps
// (deployments), scripts, devices with wipe and retire actions, and RBAC
// roles, kept in memory. It honours Idempotency-Key, as a backend behind the
// gateway should, so a replayed call is carried out at most once.
package adminapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"mime"
	"net/http"
	"sort"
	"strconv"
	"sync"

	"github.com/approval-gateway/gateway/examples/attested"
)

// API is the example admin API.
type API struct {
	mu        sync.Mutex
	kinds     map[string]map[string]map[string]any // kind → id → object
	next      int
	idempKeys map[string]answer
	mux       *http.ServeMux
	// Log, when set, receives one line per mutating call.
	Log *log.Logger
}

type answer struct {
	status int
	body   []byte
}

// Options adjust the API.
type Options struct {
	// Protect, when set, wraps the routes that must never run without an
	// approval (attested.Require): wiping and retiring devices, deleting
	// anything, and every change to scripts and roles.
	Protect func(http.Handler) http.Handler
}

// New returns the API with a few objects of each kind.
func New() *API { return NewWith(Options{}) }

// NewWith returns the API with a few objects of each kind, as o says.
func NewWith(o Options) *API {
	a := &API{kinds: map[string]map[string]map[string]any{}, idempKeys: map[string]answer{}, next: 100}
	seed := map[string][]map[string]any{
		"apps":    {{"name": "payroll", "version": "1.4.2"}, {"name": "vpn-client", "version": "5.0.1"}},
		"scripts": {{"name": "rotate-local-admin", "target": "all-laptops"}},
		"devices": {{"name": "LT-0042", "ownership": "corporate"}, {"name": "PHONE-7", "ownership": "personal"}},
		"roles":   {{"name": "helpdesk", "permissions": []any{"devices.read", "devices.retire"}}},
	}
	for kind, objs := range seed {
		a.kinds[kind] = map[string]map[string]any{}
		for i, o := range objs {
			id := strconv.Itoa(i + 1)
			o["id"] = id
			a.kinds[kind][id] = o
		}
	}
	a.mux = http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc, protected bool) {
		if protected && o.Protect != nil {
			a.mux.Handle(pattern, o.Protect(h))
			return
		}
		a.mux.Handle(pattern, h)
	}
	for _, kind := range []string{"apps", "scripts", "devices", "roles"} {
		high := kind == "scripts" || kind == "roles"
		handle("GET /"+kind, a.list(kind), false)
		handle("GET /"+kind+"/{id}", a.get(kind), false)
		handle("POST /"+kind, a.idempotent(a.create(kind)), high)
		handle("PUT /"+kind+"/{id}", a.idempotent(a.update(kind, false)), high)
		handle("PATCH /"+kind+"/{id}", a.idempotent(a.update(kind, true)), high)
		handle("DELETE /"+kind+"/{id}", a.idempotent(a.remove(kind)), true)
	}
	handle("POST /devices/{id}/wipe", a.idempotent(a.deviceAction("wiped")), true)
	handle("POST /devices/{id}/retire", a.idempotent(a.deviceAction("retired")), true)
	return a
}

// ServeHTTP serves the API.
func (a *API) ServeHTTP(w http.ResponseWriter, r *http.Request) { a.mux.ServeHTTP(w, r) }

func reply(w http.ResponseWriter, status int, v any) []byte {
	b, _ := json.Marshal(v)
	b = append(b, '\n')
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write(b)
	return b
}

type handler func(r *http.Request) (int, any)

// idempotent answers a repeated Idempotency-Key with the first answer,
// without doing the work again.
func (a *API) idempotent(h handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		key := r.Header.Get("Idempotency-Key")
		a.mu.Lock()
		defer a.mu.Unlock()
		if key != "" {
			if prev, ok := a.idempKeys[key]; ok {
				w.Header().Set("Idempotent-Replayed", "true")
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(prev.status)
				_, _ = w.Write(prev.body)
				return
			}
		}
		status, v := h(r)
		body := reply(w, status, v)
		if key != "" {
			a.idempKeys[key] = answer{status, body}
		}
		if a.Log != nil {
			// Approval-Approved-By is a Structured Field List: parsed,
			// never split on commas.
			approvers, err := attested.ApprovedBy(r.Header)
			if err != nil {
				approvers = []string{"(unreadable: " + err.Error() + ")"}
			}
			a.Log.Printf("%s %s -> %d (request %s, approved by %q)", r.Method, r.URL.Path, status,
				r.Header.Get("Approval-Request-Id"), approvers)
		}
	}
}

func notFound(kind, id string) (int, any) {
	return http.StatusNotFound, map[string]string{"error": fmt.Sprintf("no %s %s", kind, id)}
}

func (a *API) list(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		out := []map[string]any{}
		for _, o := range a.kinds[kind] {
			out = append(out, o)
		}
		sort.Slice(out, func(i, j int) bool {
			x, _ := strconv.Atoi(out[i]["id"].(string))
			y, _ := strconv.Atoi(out[j]["id"].(string))
			return x < y
		})
		reply(w, http.StatusOK, out)
	}
}

func (a *API) get(kind string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		defer a.mu.Unlock()
		o, ok := a.kinds[kind][r.PathValue("id")]
		if !ok {
			status, v := notFound(kind, r.PathValue("id"))
			reply(w, status, v)
			return
		}
		reply(w, http.StatusOK, o)
	}
}

// errNotJSON is a body sent with another content type than JSON.
var errNotJSON = errors.New("send the body as JSON (Content-Type: application/json)")

// readObject reads a JSON object body. It reads only bodies declared JSON,
// as a backend behind the gateway should: the gateway judges a body by its
// declared type, so a backend that parsed, say, text/plain as JSON would
// execute what the policy could not read.
func readObject(r *http.Request) (map[string]any, error) {
	var o map[string]any
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return nil, err
	}
	if len(b) == 0 {
		return map[string]any{}, nil
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/json" {
		return nil, errNotJSON
	}
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("body is not a JSON object: %v", err)
	}
	return o, nil
}

// badBody answers a body readObject refused.
func badBody(err error) (int, any) {
	if errors.Is(err, errNotJSON) {
		return http.StatusUnsupportedMediaType, map[string]string{"error": err.Error()}
	}
	return http.StatusBadRequest, map[string]string{"error": err.Error()}
}

func (a *API) create(kind string) handler {
	return func(r *http.Request) (int, any) {
		o, err := readObject(r)
		if err != nil {
			return badBody(err)
		}
		a.next++
		o["id"] = strconv.Itoa(a.next)
		a.kinds[kind][o["id"].(string)] = o
		return http.StatusCreated, o
	}
}

// update replaces an object (PUT) or applies a JSON merge patch to it
// (PATCH, RFC 7396: null removes a member, objects merge); its id stays.
func (a *API) update(kind string, merge bool) handler {
	return func(r *http.Request) (int, any) {
		id := r.PathValue("id")
		o, ok := a.kinds[kind][id]
		if !ok {
			return notFound(kind, id)
		}
		in, err := readObject(r)
		if err != nil {
			return badBody(err)
		}
		if merge {
			in = mergePatch(o, in).(map[string]any)
		}
		in["id"] = id
		a.kinds[kind][id] = in
		return http.StatusOK, in
	}
}

// mergePatch applies patch to target as RFC 7396 says.
func mergePatch(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	out := map[string]any{}
	if ok {
		for k, v := range t {
			out[k] = v
		}
	}
	for k, v := range p {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = mergePatch(out[k], v)
		}
	}
	return out
}

func (a *API) remove(kind string) handler {
	return func(r *http.Request) (int, any) {
		id := r.PathValue("id")
		o, ok := a.kinds[kind][id]
		if !ok {
			return notFound(kind, id)
		}
		delete(a.kinds[kind], id)
		return http.StatusOK, map[string]any{"deleted": o}
	}
}

func (a *API) deviceAction(state string) handler {
	return func(r *http.Request) (int, any) {
		id := r.PathValue("id")
		o, ok := a.kinds["devices"][id]
		if !ok {
			return notFound("devices", id)
		}
		o["state"] = state
		return http.StatusOK, o
	}
}
