package policy

import (
	"fmt"
	"strings"

	"github.com/open-policy-agent/opa/v1/ast"
)

// RuntimePackage is the package a runtime policy named name must declare:
// its decision is one of the library's policies.
func RuntimePackage(name string) string { return "approval.policies." + name }

// ParseRuntime checks that rego is a module of runtime policy name: it
// parses (OPA v1 syntax) and declares RuntimePackage(name). Whether it
// compiles with the policies in force is Reloader.Check's question.
func ParseRuntime(name, rego string) error {
	m, err := ast.ParseModuleWithOpts("runtime/"+name+".rego", rego, ast.ParserOptions{RegoVersion: ast.RegoV1})
	if err != nil {
		return err
	}
	if got, want := strings.TrimPrefix(m.Package.Path.String(), "data."), RuntimePackage(name); got != want {
		return fmt.Errorf("the package of runtime policy %s must be %s, not %s", name, want, got)
	}
	return nil
}
