package adminapi

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func do(t *testing.T, a *API, method, path, body string, headers ...string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, path, strings.NewReader(body))
	if body != "" {
		r.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(headers); i += 2 {
		r.Header.Set(headers[i], headers[i+1])
	}
	w := httptest.NewRecorder()
	a.ServeHTTP(w, r)
	return w
}

func TestResources(t *testing.T) {
	a := New()
	tests := []struct {
		method, path, body string
		status             int
		has                string
	}{
		{"GET", "/devices", "", 200, "LT-0042"},
		{"POST", "/devices/1/wipe", "", 200, `"state":"wiped"`},
		{"POST", "/devices/2/retire", "", 200, `"state":"retired"`},
		{"POST", "/apps", `{"name":"crm"}`, 201, `"name":"crm"`},
		{"PUT", "/roles/1", `{"permissions":[]}`, 200, `"permissions":[]`},
		{"DELETE", "/scripts/1", "", 200, "rotate-local-admin"},
		{"GET", "/scripts/1", "", 404, "no scripts 1"},
		{"POST", "/apps", `not json`, 400, "not a JSON object"},
	}
	for _, tc := range tests {
		w := do(t, a, tc.method, tc.path, tc.body)
		if w.Code != tc.status || !strings.Contains(w.Body.String(), tc.has) {
			t.Errorf("%s %s: %d %s", tc.method, tc.path, w.Code, w.Body)
		}
	}
	// A body of another type is not read as JSON.
	if w := do(t, a, "PUT", "/devices/2", `{"name":"x"}`, "Content-Type", "text/plain"); w.Code != http.StatusUnsupportedMediaType {
		t.Errorf("a text/plain body: %d %s", w.Code, w.Body)
	}
}

func TestIdempotencyKeyRunsOnce(t *testing.T) {
	a := New()
	first := do(t, a, "POST", "/apps", `{"name":"x"}`, "Idempotency-Key", "k1")
	again := do(t, a, "POST", "/apps", `{"name":"x"}`, "Idempotency-Key", "k1")
	if first.Body.String() != again.Body.String() || again.Header().Get("Idempotent-Replayed") != "true" {
		t.Fatalf("first %s, again %s", first.Body, again.Body)
	}
	list := do(t, a, "GET", "/apps", "")
	if strings.Count(list.Body.String(), `"name":"x"`) != 1 {
		t.Fatalf("created twice: %s", list.Body)
	}
	if w := do(t, a, "POST", "/apps", `{"name":"x"}`, "Idempotency-Key", "k2"); w.Code != http.StatusCreated {
		t.Fatal("a new key was not honoured")
	}
}
