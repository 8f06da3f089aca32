// Package policy loads the Rego access policies, evaluates them and reads
// their decision under a strict contract: anything but a well-formed
// decision is a deny.
package policy

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/open-policy-agent/opa/v1/ast"
	"github.com/open-policy-agent/opa/v1/loader"
	"github.com/open-policy-agent/opa/v1/metrics"
	"github.com/open-policy-agent/opa/v1/rego"
	"github.com/open-policy-agent/opa/v1/storage/inmem"
	"github.com/open-policy-agent/opa/v1/topdown/print"
	"go.uber.org/zap"
)

// DefaultQuery is the decision evaluated when none is configured.
const DefaultQuery = "data.approval.decision"

// Policy is one compiled, immutable set of policies and data, ready to
// evaluate.
type Policy struct {
	query    rego.PreparedEvalQuery
	Dir      string
	Query    string
	Files    []string
	LoadedAt time.Time
	// Use is what of the input the policies read; DecideCall builds only
	// that.
	Use InputUse
}

// Module is a policy kept outside the directory (in the store): Rego text
// and a data document, which lands at data.runtime.<Name>.
type Module struct {
	Name string         `json:"name"`
	Rego string         `json:"rego"`
	Data map[string]any `json:"data,omitempty"`
}

// Load reads every .rego, .json and .yaml file under dir (test files
// *_test.rego excepted), as `opa eval -d dir` does, and prepares query. Errors
// name the file and line.
func Load(ctx context.Context, dir, query string, logger *zap.Logger) (*Policy, error) {
	return LoadWith(ctx, dir, query, nil, logger)
}

// LoadWith is Load with runtime modules compiled in beside the files.
func LoadWith(ctx context.Context, dir, query string, extra []Module, logger *zap.Logger) (*Policy, error) {
	if query == "" {
		query = DefaultQuery
	}
	if logger == nil {
		logger = zap.NewNop()
	}
	st, err := os.Stat(dir)
	if err != nil {
		return nil, fmt.Errorf("loading policies from %s: %w", dir, err)
	}
	if !st.IsDir() {
		return nil, fmt.Errorf("loading policies from %s: not a directory", dir)
	}
	res, err := loader.NewFileLoader().
		WithRegoVersion(ast.RegoV1).
		Filtered([]string{dir}, skipTests)
	if err != nil {
		return nil, fmt.Errorf("loading policies from %s: %w", dir, err)
	}
	if len(res.Modules) == 0 {
		return nil, fmt.Errorf("loading policies from %s: no .rego files found", dir)
	}
	docs := res.Documents
	if docs == nil {
		docs = map[string]any{}
	}
	files := make([]string, 0, len(res.Modules)+len(extra))
	var parsed []*ast.Module
	for _, m := range res.Modules {
		parsed = append(parsed, m.Parsed)
		files = append(files, m.Name) // the path as read; the map's key lost its leading "/"
	}
	if len(extra) > 0 {
		runtime := map[string]any{}
		for _, m := range extra {
			file := "runtime/" + m.Name + ".rego"
			mod, err := ast.ParseModuleWithOpts(file, m.Rego, ast.ParserOptions{RegoVersion: ast.RegoV1})
			if err != nil {
				return nil, fmt.Errorf("runtime policy %s: %w", m.Name, err)
			}
			parsed = append(parsed, mod)
			files = append(files, file)
			if m.Data != nil {
				runtime[m.Name] = m.Data
			}
		}
		if _, clash := docs["runtime"]; clash && len(runtime) > 0 {
			return nil, fmt.Errorf("loading policies from %s: data.runtime is reserved for runtime policies", dir)
		}
		if len(runtime) > 0 {
			docs["runtime"] = runtime
		}
	}
	opts := []func(*rego.Rego){
		rego.Query(query),
		// Data held as Rego values: reads during evaluation convert nothing.
		rego.Store(inmem.NewFromObjectWithOpts(docs, inmem.OptReturnASTValuesOnRead(true))),
		rego.EnablePrintStatements(true),
		rego.PrintHook(printHook{logger}),
		rego.StrictBuiltinErrors(true),
	}
	for _, m := range parsed {
		opts = append(opts, rego.ParsedModule(m))
	}
	sort.Strings(files)
	pq, err := rego.New(opts...).PrepareForEval(ctx)
	if err != nil {
		return nil, fmt.Errorf("compiling policies from %s: %w", dir, err)
	}
	return &Policy{query: pq, Dir: dir, Query: query, Files: files, LoadedAt: time.Now(), Use: analyze(parsed, query)}, nil
}

// analyze compiles a copy of the modules (imports resolved) and finds what
// of the input they read; anything it cannot tell means all of it.
func analyze(parsed []*ast.Module, query string) InputUse {
	mods := make(map[string]*ast.Module, len(parsed))
	for i, m := range parsed {
		mods[strconv.Itoa(i)] = m
	}
	c := ast.NewCompiler().WithDefaultRegoVersion(ast.RegoV1).WithEnablePrintStatements(true)
	c.Compile(mods)
	if c.Failed() {
		return allInput
	}
	return inputUse(c.Modules, query)
}

// skipTests leaves test files out of the loaded policies.
func skipTests(_ string, info fs.FileInfo, _ int) bool {
	return !info.IsDir() && strings.HasSuffix(info.Name(), "_test.rego")
}

// Engine evaluates the current Policy. The policy is swapped whole, so an
// evaluation always sees one consistent snapshot.
type Engine struct {
	current atomic.Pointer[Policy]
}

// NewEngine returns an Engine evaluating p.
func NewEngine(p *Policy) *Engine {
	e := &Engine{}
	e.current.Store(p)
	return e
}

// Swap replaces the policy in force.
func (e *Engine) Swap(p *Policy) { e.current.Store(p) }

// Current returns the policy in force.
func (e *Engine) Current() *Policy { return e.current.Load() }

// Decide evaluates the decision for input. On any error (evaluation error,
// no result, several results, malformed decision) it returns a deny decision
// and the error, which the caller logs: the call fails closed.
func (e *Engine) Decide(ctx context.Context, input map[string]any) (Decision, error) {
	withSegments(input)
	v, err := ast.InterfaceToValue(input)
	if err != nil {
		return failClosed, fmt.Errorf("input: %w", err)
	}
	return e.current.Load().decide(ctx, v)
}

// withSegments completes a hand-written input that gives request.path but
// not request.segments, as the gateway's own input always has them.
func withSegments(input map[string]any) {
	req, ok := input["request"].(map[string]any)
	if !ok {
		return
	}
	path, ok := req["path"].(string)
	if _, has := req["segments"]; !ok || has {
		return
	}
	segs := []any{}
	for _, s := range Segments(path) {
		segs = append(segs, s)
	}
	req["segments"] = segs
}

// DecideCall decides a call, building its input directly as a Rego value
// and only with the parts the policies read: the gateway's hot path.
func (e *Engine) DecideCall(ctx context.Context, c Call, who Caller, now time.Time) (Decision, error) {
	return e.current.Load().DecideCall(ctx, c, who, now)
}

// DecideCall decides a call by this policy. A caller that prepared the call
// according to p.Use (reading the body only if p reads it) decides by the
// same p, so a reload in between cannot judge an unread body.
func (p *Policy) DecideCall(ctx context.Context, c Call, who Caller, now time.Time) (Decision, error) {
	v, err := p.Use.value(c, who, now)
	if err != nil {
		return failClosed, fmt.Errorf("input: %w", err)
	}
	return p.decide(ctx, v)
}

func (p *Policy) decide(ctx context.Context, input ast.Value) (Decision, error) {
	rs, err := p.query.Eval(ctx, rego.EvalParsedInput(input), rego.EvalMetrics(noMetrics), rego.EvalGenerateJSON(asTerm))
	if err != nil {
		return failClosed, fmt.Errorf("evaluating %s: %w", p.Query, err)
	}
	if len(rs) == 0 || len(rs[0].Expressions) == 0 {
		return failClosed, fmt.Errorf("%s is undefined", p.Query)
	}
	if len(rs) > 1 || len(rs[0].Expressions) > 1 {
		return failClosed, fmt.Errorf("%s has %d results, want one", p.Query, len(rs))
	}
	t, ok := rs[0].Expressions[0].Value.(*ast.Term)
	if !ok {
		return failClosed, fmt.Errorf("%s: the result is a %T", p.Query, rs[0].Expressions[0].Value)
	}
	d, err := parseDecision(t.Value)
	if err != nil {
		return failClosed, fmt.Errorf("%s: %w", p.Query, err)
	}
	return d, nil
}

// The decision is read as the Rego value it is (asTerm: no conversion to
// Go values), and evaluation keeps no metrics: the hot path allocates for
// neither.
var noMetrics = metrics.NoOp()

func asTerm(t *ast.Term, _ *rego.EvalContext) (any, error) { return t, nil }

// printHook sends Rego print() output to the log.
type printHook struct{ logger *zap.Logger }

func (h printHook) Print(pctx print.Context, msg string) error {
	loc := ""
	if pctx.Location != nil {
		loc = pctx.Location.String()
	}
	h.logger.Info("rego print", zap.String("location", loc), zap.String("message", msg))
	return nil
}
