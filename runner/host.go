package runner

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
	"github.com/lgx-run/lgx/store"
)

// call implements nodes.Host for its invocation.
var _ nodes.Host = (*call)(nil)

// HTTPClient returns the run's shared client (Options.HTTPClient, or one
// built on first use).
func (c *call) HTTPClient() *http.Client {
	r := c.r
	r.httpOnce.Do(func() {
		if r.http == nil {
			r.http = nodes.NewHTTPClient("lgx")
		}
	})
	return r.http
}

// IdempotencyKey derives from run id, node and item index, so it is the
// same across retries and resumes.
func (c *call) IdempotencyKey() string {
	return c.r.id + ":" + c.n.name + ":" + strconv.Itoa(c.index)
}

// Token streams model output as a token event.
func (c *call) Token(text string) {
	if c.r.sink == nil {
		return
	}
	ev := Event{Event: EventToken, Node: c.n.name, Step: c.step, Token: c.r.red.str(text)}
	if c.index >= 0 {
		i := c.index
		ev.Index = &i
	}
	c.r.emit(ev)
}

// Provider returns a provider resolved at run start (env and secret
// expressions evaluated, the kind's API key env var as default).
func (c *call) Provider(name string) (*nodes.Provider, error) {
	if name == "" {
		name = "default"
	}
	p, ok := c.r.providers[name]
	if !ok {
		return nil, nodes.Errorf(nodes.KindInput, "unknown provider %q", name)
	}
	cp := *p
	return &cp, nil
}

// Tools returns the named tools' declarations, in order.
func (c *call) Tools(names []string) ([]nodes.ToolSpec, error) {
	out := make([]nodes.ToolSpec, 0, len(names))
	for _, n := range names {
		t, ok := c.r.g.tools[n]
		if !ok {
			return nil, nodes.Errorf(nodes.KindInput, "unknown tool %q", n)
		}
		out = append(out, t.spec)
	}
	return out, nil
}

// RunTool runs a tool's node with `args` in scope, under the node's caps,
// timeout and retry policy, and evaluates the tool's `output` (default: the
// result).
func (c *call) RunTool(ctx context.Context, name string, args map[string]any) (any, error) {
	r := c.r
	t, ok := r.g.tools[name]
	if !ok {
		return nil, nodes.Errorf(nodes.KindInput, "unknown tool %q", name)
	}
	tc := &call{r: r, n: t.node, caps: r.tcaps[name], step: c.step, index: c.index}
	tc.env = exprEnv{State: c.env.State, Args: args, Env: r.env, Secrets: r.secrets, Run: c.env.Run}
	tc.inv = nodes.Invocation{RunID: r.id, Workflow: r.g.wf.Name, Node: c.n.name + "." + name, Step: c.step,
		Index: c.index, Prepared: t.node.prep, Host: tc}
	if t.node.with != nil {
		w, err := t.node.with.evalMap(&tc.env)
		if err != nil {
			return nil, &nodes.Error{Kind: nodes.KindExpr, Err: fmt.Errorf("tool %s: with.%w", name, err)}
		}
		tc.inv.With = w
	}
	res, _, err := r.attempts(ctx, nil, t.node, tc.caps, &tc.inv, tc.onWait)
	if err != nil {
		return nil, err
	}
	if t.output == nil {
		return res, nil
	}
	tc.env.Result = res
	out, err := t.output.eval(&tc.env)
	if err != nil {
		return nil, &nodes.Error{Kind: nodes.KindExpr, Err: fmt.Errorf("tool %s: output: %w", name, err)}
	}
	return out, nil
}

// RunSubgraph loads the child workflow (relative to the parent file),
// validates and compiles it, and runs it with input, sharing the parent's
// global cap and pools. The child is not recorded separately: the parent
// records the subgraph invocation's result.
func (c *call) RunSubgraph(ctx context.Context, path string, input map[string]any) (map[string]any, error) {
	r := c.r
	if !filepath.IsAbs(path) && r.g.wf.File != "" {
		path = filepath.Join(filepath.Dir(r.g.wf.File), path)
	}
	g, err := LoadGraph(path)
	if err != nil {
		return nil, &nodes.Error{Kind: nodes.KindInput, Err: err}
	}
	opts := Options{Inputs: input, Environ: r.opts.Environ, HTTPClient: c.HTTPClient(), limits: r.lim,
		RunID: r.id + "/" + c.n.name}
	res, err := Run(ctx, g, opts)
	if err != nil {
		var ie *InputError
		if errors.As(err, &ie) {
			return nil, &nodes.Error{Kind: nodes.KindInput, Err: fmt.Errorf("subgraph %s: %w", path, err)}
		}
		return nil, fmt.Errorf("subgraph %s: %w", path, err)
	}
	if res.Status != store.StatusCompleted {
		return nil, fmt.Errorf("subgraph %s ended %s", path, res.Status)
	}
	return res.State, nil
}

// LoadGraph loads, validates and compiles a workflow file; validation
// errors are returned as spec.Diagnostics.
func LoadGraph(path string) (*Graph, error) {
	w, ds, err := spec.LoadFile(path)
	if err != nil {
		return nil, err
	}
	if ds.HasErrors() {
		return nil, &InvalidWorkflowError{File: path, Diagnostics: ds.Errors()}
	}
	return compileValid(w)
}

// compileValid validates then compiles a loaded workflow.
func compileValid(w *spec.Workflow) (*Graph, error) {
	if ds := spec.Validate(w); ds.HasErrors() {
		return nil, &InvalidWorkflowError{File: w.File, Diagnostics: ds.Errors()}
	}
	return Compile(w)
}
