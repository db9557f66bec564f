package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/nodes/mcp"
	"github.com/lgx-run/lgx/runner"
	"github.com/lgx-run/lgx/spec"
)

// mcpConnectTimeout bounds starting or reaching one server and listing
// its tools.
const mcpConnectTimeout = 60 * time.Second

func (a *app) mcpCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mcp",
		Short: "Inspect a workflow's MCP servers",
		Long: `mcp works with the MCP servers a workflow declares under "mcp:" (SPEC §9.9).
"lgx mcp list FILE" starts or connects each server, as a run would, and prints
its tools with their parameters: the names to write as server.tool in an
llm_call's tools, or as with.tool of an mcp_call.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrf("unknown mcp command %q (try lgx mcp list FILE)", args[0])
			}
			return usageErrf("lgx mcp needs a command: lgx mcp list FILE")
		},
		RunE: func(*cobra.Command, []string) error { return nil },
	}
	var opts mcpListOptions
	list := &cobra.Command{
		Use:   "list FILE",
		Short: "List each MCP server's tools and their parameters",
		Long: `list starts (stdio) or connects to (streamable HTTP) every server under the
workflow's "mcp:", lists its tools (after the server's tools: allowlist) and
stops it. A parameter marked * is required. A server that cannot be reached is
reported and the command exits 1 after listing the others. Servers' stderr is
not shown.`,
		Example: `  lgx mcp list workflows/mcp_agent.yaml
  lgx mcp list -o json workflows/mcp_agent.yaml | jq '.[].tools[].name'`,
		Args: exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.file = args[0]
			return a.runMCPList(cmd.Context(), opts)
		},
	}
	list.Flags().StringVarP(&opts.format, "output", "o", "text", "output format: text or json")
	cmd.AddCommand(list)
	return cmd
}

// mcpListOptions are lgx mcp list's flag and argument.
type mcpListOptions struct {
	file   string
	format string
}

// runMCPList lists the tools of every MCP server the workflow declares;
// exit 1 when one could not be listed (after listing the others).
func (a *app) runMCPList(ctx context.Context, opts mcpListOptions) error {
	if opts.format != "text" && opts.format != "json" {
		return usageErrf("-o must be text or json, not %q", opts.format)
	}
	wf, err := a.mustBeValid(opts.file)
	if err != nil {
		return err
	}
	listed, failed := listMCP(ctx, wf)
	if opts.format == "json" {
		enc := json.NewEncoder(a.ios.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(listed); err != nil {
			return err
		}
	} else {
		writeMCPList(a.ios.Out, listed)
	}
	if failed {
		return reported(errFailed)
	}
	return nil
}

// mcpListing is one server in `lgx mcp list -o json`.
type mcpListing struct {
	Server string     `json:"server"`
	Kind   string     `json:"kind"` // stdio | http
	Target string     `json:"target"`
	Tools  []mcp.Tool `json:"tools"`
	Error  string     `json:"error,omitempty"`
}

// connectMCP compiles the workflow and returns a manager of its servers.
func connectMCP(wf *spec.Workflow) (*mcp.Manager, error) {
	g, err := runner.Compile(wf)
	if err != nil {
		return nil, err
	}
	return runner.NewMCPManager(g, os.Environ(), nil)
}

// listMCP lists every server's tools, in file order; failed is true when
// any server could not be listed.
func listMCP(ctx context.Context, wf *spec.Workflow) (out []mcpListing, failed bool) {
	if ctx == nil {
		ctx = context.Background()
	}
	m, err := connectMCP(wf)
	for _, s := range wf.MCP {
		l := mcpListing{Server: s.Name, Kind: "stdio", Target: strings.TrimSpace(s.Command + " " + strings.Join(s.Args, " ")), Tools: []mcp.Tool{}}
		if s.URL != "" {
			l.Kind, l.Target = "http", s.URL
		}
		if err == nil {
			cctx, cancel := context.WithTimeout(ctx, mcpConnectTimeout)
			var tools []mcp.Tool
			tools, lerr := m.Tools(cctx, s.Name)
			cancel()
			if lerr != nil {
				l.Error = lerr.Error()
			} else {
				l.Tools = tools
			}
		} else {
			l.Error = err.Error()
		}
		failed = failed || l.Error != ""
		out = append(out, l)
	}
	if m != nil {
		_ = m.Close()
	}
	return out, failed
}

func writeMCPList(w io.Writer, list []mcpListing) {
	if len(list) == 0 {
		fmt.Fprintln(w, "no MCP servers (declare them under mcp:)")
		return
	}
	for i, l := range list {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "%s (%s: %s)\n", l.Server, l.Kind, l.Target)
		if l.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", l.Error)
			continue
		}
		for _, t := range l.Tools {
			fmt.Fprintf(w, "  %s.%s(%s)\n", l.Server, t.Name, paramList(t.InputSchema))
			if d := firstLine(t.Description); d != "" {
				fmt.Fprintf(w, "      %s\n", d)
			}
		}
	}
}

// paramList renders a JSON Schema's top-level properties as
// "name: type*, …" (* = required), sorted by name.
func paramList(schema map[string]any) string {
	props, _ := schema["properties"].(map[string]any)
	req := map[string]bool{}
	if rs, ok := schema["required"].([]any); ok {
		for _, r := range rs {
			if s, ok := r.(string); ok {
				req[s] = true
			}
		}
	}
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		typ := "any"
		if p, ok := props[n].(map[string]any); ok {
			switch t := p["type"].(type) {
			case string:
				typ = t
			case []any:
				var ts []string
				for _, x := range t {
					ts = append(ts, fmt.Sprint(x))
				}
				typ = strings.Join(ts, "|")
			}
		}
		parts[i] = n + ": " + typ
		if req[n] {
			parts[i] += "*"
		}
	}
	return strings.Join(parts, ", ")
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i]
	}
	return s
}

// onlineMCP is `lgx validate --online` for MCP: it connects every server,
// lists its tools and checks each server.tool an llm_call names, and each
// mcp_call's tool and literal arguments against the tool's input schema,
// with "did you mean". Servers are stopped before it returns.
func onlineMCP(ctx context.Context, wf *spec.Workflow) spec.Diagnostics {
	if len(wf.MCP) == 0 {
		return nil
	}
	if ctx == nil {
		ctx = context.Background()
	}
	var ds spec.Diagnostics
	errorf := func(p spec.Pos, hint, format string, args ...any) {
		ds = append(ds, spec.Diagnostic{File: wf.File, Pos: p, Severity: spec.SeverityError, Code: spec.CodeMCP, Message: fmt.Sprintf(format, args...), Hint: hint})
	}
	m, err := connectMCP(wf)
	if err != nil {
		errorf(wf.MCP[0].Pos, "", "mcp: %v", err)
		return ds
	}
	defer m.Close()
	tools := map[string]map[string]mcp.Tool{}
	for _, s := range wf.MCP {
		cctx, cancel := context.WithTimeout(ctx, mcpConnectTimeout)
		list, err := m.Tools(cctx, s.Name)
		cancel()
		if err != nil {
			errorf(s.Pos, "check the declaration with lgx mcp list", "%v", err)
			continue
		}
		tools[s.Name] = map[string]mcp.Tool{}
		for _, t := range list {
			tools[s.Name][t.Name] = t
		}
		// The list is the allowlist applied: an entry missing from it is
		// one the server does not have (a typo that server.* would hide).
		for _, t := range s.Tools {
			if _, ok := tools[s.Name][t.Value]; !ok {
				errorf(t.Pos, "check its spelling; lgx mcp list without this entry shows the server's tools",
					"mcp server %s: tools: the server lists no tool %q", s.Name, t.Value)
			}
		}
	}
	// lookup reports a tool missing from a server that listed its tools.
	lookup := func(server, tool string, p spec.Pos, who string) (mcp.Tool, bool) {
		ts, ok := tools[server]
		if !ok {
			return mcp.Tool{}, false // unknown (static check) or unreachable (reported)
		}
		t, ok := ts[tool]
		if !ok {
			names := make([]string, 0, len(ts))
			for n := range ts {
				names = append(names, n)
			}
			sort.Strings(names)
			hint := "lgx mcp list shows its tools"
			if s := spec.Suggest(tool, names); s != "" {
				hint = fmt.Sprintf("did you mean %s.%s?", server, s)
			}
			errorf(p, hint, "%s: mcp server %s has no tool %q", who, server, tool)
		}
		return t, ok
	}
	check := func(n *spec.Node, who string) {
		with := withMap(n.With)
		typ, _ := nodes.Lookup(n.Type)
		caps := nodes.CapabilitiesOf(typ)
		if caps.ToolsField != "" {
			if ts := with[caps.ToolsField]; ts != nil && ts.Kind == yaml.SequenceNode {
				for _, t := range ts.Content {
					server, tool, ok := strings.Cut(t.Value, ".")
					if ok && tool != "*" && t.Kind == yaml.ScalarNode {
						lookup(server, tool, spec.Pos{Line: t.Line, Col: t.Column}, who)
					}
				}
			}
		}
		if caps.CallsField != "" {
			// Literal calls a workflow writes itself (not a model's).
			if cs := with[caps.CallsField]; cs != nil && cs.Kind == yaml.SequenceNode {
				for _, c := range cs.Content {
					if nn := withMap(c)["name"]; nn != nil && nn.Kind == yaml.ScalarNode && !hasExpr(nn) {
						if server, tool, ok := mcpCallName(wf, nn.Value); ok {
							lookup(server, tool, spec.Pos{Line: nn.Line, Col: nn.Column}, who)
						}
					}
				}
			}
		}
		if caps.ServerField != "" && caps.ServerToolField != "" {
			sn, tn := with[caps.ServerField], with[caps.ServerToolField]
			if sn == nil || tn == nil {
				return
			}
			t, ok := lookup(sn.Value, tn.Value, spec.Pos{Line: tn.Line, Col: tn.Column}, who)
			if !ok {
				return
			}
			an := with[caps.ServerArgsField]
			if an != nil && hasExpr(an) {
				return // checked at run time, before the call
			}
			args := map[string]any{}
			at := spec.Pos{Line: tn.Line, Col: tn.Column}
			if an != nil {
				at = spec.Pos{Line: an.Line, Col: an.Column}
				v, err := spec.DecodeValue(an)
				if m, ok := v.(map[string]any); err == nil && ok {
					args = m
				}
			}
			ts := nodes.ToolSpec{Name: t.Name, Parameters: t.InputSchema}
			if err := nodes.CheckToolArgs(&ts, args); err != nil {
				errorf(at, "lgx mcp list shows its parameters", "%s: %s.%s: %v", who, sn.Value, tn.Value, err)
			}
		}
	}
	for _, n := range wf.Nodes {
		check(n, "node "+n.Name)
	}
	for _, t := range wf.Tools {
		if t.Node != nil {
			check(t.Node, "tool "+t.Name)
		}
	}
	return ds
}

// mcpCallName splits a tool call's name that names an MCP tool, written
// `server.tool` or as a model writes it, `server__tool`; a declared tool of
// that name is not one (as at run time).
func mcpCallName(wf *spec.Workflow, name string) (server, tool string, ok bool) {
	for _, t := range wf.Tools {
		if t.Name == name {
			return "", "", false
		}
	}
	for _, sep := range []string{".", "__"} {
		if s, t, found := strings.Cut(name, sep); found && t != "" {
			for _, m := range wf.MCP {
				if m.Name == s {
					return s, t, true
				}
			}
		}
	}
	return "", "", false
}

// withMap returns a node's `with` values by key.
func withMap(n *yaml.Node) map[string]*yaml.Node {
	out := map[string]*yaml.Node{}
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil || n.Kind != yaml.MappingNode {
		return out
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		v := n.Content[i+1]
		for v.Kind == yaml.AliasNode && v.Alias != nil {
			v = v.Alias
		}
		out[n.Content[i].Value] = v
	}
	return out
}

// hasExpr reports whether a YAML value holds a ${{ }} expression anywhere.
func hasExpr(n *yaml.Node) bool {
	if n.Kind == yaml.ScalarNode {
		return strings.Contains(n.Value, "${{")
	}
	for _, c := range n.Content {
		if hasExpr(c) {
			return true
		}
	}
	return false
}
