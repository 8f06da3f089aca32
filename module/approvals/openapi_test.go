package approvals_test

import (
	"context"
	"go/ast"
	"go/parser"
	"go/token"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/approval-gateway/gateway/module/approvals"
	"github.com/approval-gateway/gateway/module/approvals/approvalstest"
	"github.com/getkin/kin-openapi/openapi3"
)

// TestOpenAPIDocument reads the OpenAPI document as a client does, without
// a token, from a gateway with a prefix of its own, and holds it to the
// route table: every route is documented, and every documented call is
// served (the harness checks each answer below against the document, too).
func TestOpenAPIDocument(t *testing.T) {
	const prefix = "/ops/approvals"
	h := approvalstest.New(t, "", func(o *approvalstest.Options) { o.Prefix = prefix })
	admin := h.Token("audrey", "auditors")

	res := h.Expect(h.Do("GET", prefix+"/api/v1/openapi.json", "", ""), http.StatusOK, "")
	if ct := res.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("Content-Type %q", ct)
	}
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Cache-Control") == "" {
		t.Fatalf("the document is not cacheable: %v", res.Header)
	}
	if again := h.Do("GET", prefix+"/api/v1/openapi.json", "", "", "If-None-Match", etag); again.Status != http.StatusNotModified || again.Raw != "" {
		t.Fatalf("a current copy answered %d: %s", again.Status, again.Raw)
	}

	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData([]byte(res.Raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background(), openapi3.EnableSchemaFormatValidation()); err != nil {
		t.Fatalf("not a valid OpenAPI document: %v", err)
	}
	if doc.OpenAPI != "3.1.0" || !doc.IsOpenAPI31OrLater() {
		t.Fatalf("openapi %q, want 3.1.0", doc.OpenAPI)
	}
	if len(doc.Servers) != 1 || doc.Servers[0].URL != prefix {
		t.Fatalf("servers %v, want the one prefix %s", doc.Servers, prefix)
	}

	// Its error codes are the code's.
	var enum []string
	for _, v := range doc.Components.Schemas["ErrorCode"].Value.Enum {
		enum = append(enum, v.(string))
	}
	sort.Strings(enum)
	if got, want := enum, errorCodes(t); !slices.Equal(got, want) {
		t.Errorf("the document's error codes are\n\t%s\nthe code's\n\t%s", strings.Join(got, " "), strings.Join(want, " "))
	}

	// The document and the route table name the same calls.
	documented := map[string]*openapi3.Operation{}
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			documented[method+" "+path] = op
		}
	}
	routes := routeTable(t)
	if got, want := sortedKeys(documented), routes; !slices.Equal(got, want) {
		t.Fatalf("the document names\n\t%s\nthe route table (routes.go) has\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	t.Logf("%d routes documented", len(routes))

	// Each documented call is served: the calls without a token answer,
	// the others ask for one.
	const id = "01a19bb3-9500-7000-83ec-809bb63b654f"
	for _, route := range routes {
		method, path, _ := strings.Cut(route, " ")
		target := prefix + strings.NewReplacer("{id}", id, "{name}", "freeze").Replace(path)
		res := h.Do(method, target, "", "")
		if op := documented[route]; op.Security != nil && len(*op.Security) == 0 {
			if res.Status != http.StatusOK {
				t.Errorf("%s %s without a token answered %d: %s", method, target, res.Status, res.Raw)
			}
			continue
		}
		if res.Status != http.StatusUnauthorized || res.Code() != approvals.CodeUnauthenticated || res.Header.Get("WWW-Authenticate") != "Bearer" {
			t.Errorf("%s %s without a token answered %d %v: %s", method, target, res.Status, res.Header, res.Raw)
		}
	}

	// The methods a documented path does not list are 405, with Allow
	// naming those it does; a path the document does not name is 404.
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		var allow []string
		for m := range item.Operations() {
			allow = append(allow, m)
			if m == http.MethodGet {
				allow = append(allow, http.MethodHead)
			}
		}
		sort.Strings(allow)
		target := prefix + strings.NewReplacer("{id}", id, "{name}", "freeze").Replace(path)
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodOptions} {
			if item.GetOperation(m) != nil {
				continue
			}
			res := h.Do(m, target, admin, "")
			if res.Status != http.StatusMethodNotAllowed || res.Code() != approvals.CodeMethodNotAllowed || res.Header.Get("Allow") != strings.Join(allow, ", ") {
				t.Errorf("%s %s answered %d %q (Allow %q), want 405 with Allow %q", m, target, res.Status, res.Code(), res.Header.Get("Allow"), strings.Join(allow, ", "))
			}
		}
	}
	for _, path := range []string{"/api/v1/nothing", "/api/v1/requests/" + id + "/frobnicate", "/api/v1"} {
		h.Undocumented("GET", prefix+path)
		h.Expect(h.Do("GET", prefix+path, admin, ""), http.StatusNotFound, approvals.CodeNotFound)
	}
}

// routeTable reads the approval API's routes from routes.go, as "METHOD
// path" below the prefix, sorted: the table is the code, so a route added
// there without its operation in the document fails the test.
func routeTable(t *testing.T) []string {
	t.Helper()
	f, err := parser.ParseFile(token.NewFileSet(), "routes.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var routes []string
	ast.Inspect(f, func(n ast.Node) bool {
		fn, ok := n.(*ast.FuncDecl)
		if ok && fn.Name.Name != "routes" {
			return false
		}
		call, ok := n.(*ast.CallExpr)
		if !ok {
			return true
		}
		sel, ok := call.Fun.(*ast.SelectorExpr)
		if !ok || (sel.Sel.Name != "Handle" && sel.Sel.Name != "HandleFunc") || len(call.Args) != 2 {
			return true
		}
		pattern, ok := patternOf(call.Args[0])
		if !ok {
			t.Fatalf("routes.go: a route pattern this test cannot read: %#v", call.Args[0])
		}
		routes = append(routes, pattern)
		return true
	})
	if len(routes) == 0 {
		t.Fatal("routes.go: no routes found")
	}
	sort.Strings(routes)
	return routes
}

// errorCodes reads the contract's error codes from the code: the Code…
// string constants of the packages that answer (this one, record and
// inspect), and the one literal code of respond.go, sorted.
func errorCodes(t *testing.T) []string {
	t.Helper()
	var files []string
	for _, dir := range []string{".", "../record", "../inspect"} {
		m, err := filepath.Glob(filepath.Join(dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, m...)
	}
	codes := map[string]bool{"internal": true} // writeJSON's last resort
	for _, file := range files {
		if strings.HasSuffix(file, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), file, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			g, ok := d.(*ast.GenDecl)
			if !ok || g.Tok != token.CONST {
				continue
			}
			for _, spec := range g.Specs {
				vs := spec.(*ast.ValueSpec)
				for i, name := range vs.Names {
					if !strings.HasPrefix(name.Name, "Code") || i >= len(vs.Values) {
						continue
					}
					if lit, ok := vs.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
						v, _ := strconv.Unquote(lit.Value)
						codes[v] = true
					}
				}
			}
		}
	}
	return sortedKeys(codes)
}

// patternOf evaluates a route pattern of routes.go: string literals, the
// prefix (s.Prefix: "") and the API base (a: "/api/v1"), added up.
func patternOf(e ast.Expr) (string, bool) {
	switch e := e.(type) {
	case *ast.BasicLit:
		s, err := strconv.Unquote(e.Value)
		return s, err == nil
	case *ast.Ident:
		return "/api/v1", e.Name == "a"
	case *ast.SelectorExpr:
		if x, ok := e.X.(*ast.Ident); ok && x.Name == "s" {
			switch e.Sel.Name {
			case "Prefix":
				return "", true
			case "api":
				return "/api/v1", true
			}
		}
	case *ast.BinaryExpr:
		l, lok := patternOf(e.X)
		r, rok := patternOf(e.Y)
		return l + r, lok && rok && e.Op == token.ADD
	}
	return "", false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
