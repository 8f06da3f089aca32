package policy

import (
	"github.com/open-policy-agent/opa/v1/ast"
)

// InputUse says which of the costly parts of the input any policy may read.
// The gateway builds only those: a policy that never reads the body (nor
// its size or hash) costs no read of it, and an allowed call's body then
// streams to the backend. What a policy cannot read, it cannot miss.
type InputUse struct {
	Body, Headers, Query, Claims bool
}

// allInput is the safe answer: build everything.
var allInput = InputUse{Body: true, Headers: true, Query: true, Claims: true}

// inputUse finds the input paths read by the compiled modules and the
// query. Any read of a whole document above a part (input, input.request,
// input.identity), or input as a plain value, counts as reading the parts
// below it.
func inputUse(modules map[string]*ast.Module, query string) InputUse {
	var use InputUse
	mark := func(path []string) {
		under := func(p ...string) bool {
			for i := range min(len(p), len(path)) {
				if p[i] != path[i] {
					return false
				}
			}
			return true
		}
		use.Body = use.Body || under("request", "body") || under("request", "body_size") || under("request", "body_sha256")
		use.Headers = use.Headers || under("request", "headers")
		use.Query = use.Query || under("request", "query")
		use.Claims = use.Claims || under("identity", "claims")
	}
	var vis *ast.GenericVisitor
	vis = ast.NewGenericVisitor(func(x any) bool {
		switch x := x.(type) {
		case ast.Ref:
			if x[0].Value.Compare(ast.InputRootDocument.Value) == 0 {
				var path []string
				for _, t := range x[1:] {
					s, ok := t.Value.(ast.String)
					if !ok {
						break
					}
					path = append(path, string(s))
				}
				mark(path)
			} else {
				vis.Walk(x[0])
			}
			for _, t := range x[1:] {
				vis.Walk(t)
			}
			return true
		case ast.Var:
			if x.Equal(ast.InputRootDocument.Value) {
				mark(nil)
			}
		}
		return false
	})
	for _, m := range modules {
		vis.Walk(m)
	}
	body, err := ast.ParseBody(query)
	if err != nil {
		return allInput
	}
	vis.Walk(body)
	return use
}
