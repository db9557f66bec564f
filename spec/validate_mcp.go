package spec

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"

	"go.yaml.in/yaml/v3"
)

// secretRefRE finds secrets.NAME in header expressions.
var secretRefRE = regexp.MustCompile(`secrets\.([A-Za-z_][A-Za-z0-9_]*)`)

// checkMCP checks the `mcp:` declarations statically (SPEC §9.9): each is
// a stdio server (command) or an HTTP one (url), env names are variable
// names, URLs are absolute http(s) URLs, pools and secrets exist.
// `lgx validate --online` checks the tools themselves.
func (v *validator) checkMCP() {
	secrets := make([]string, len(v.w.Secrets))
	for i, s := range v.w.Secrets {
		secrets[i] = s.Value
	}
	for _, s := range v.w.MCP {
		who := "mcp server " + s.Name
		v.identifier("mcp server", s.Name, s.Pos)
		switch {
		case s.Command == "" && s.URL == "":
			v.errorf(s.Pos, CodeMissingKey, "add `command: …` (stdio) or `url: http://…` (streamable HTTP)", "%s: needs command or url", who)
		case s.Command != "" && s.URL != "":
			v.errorf(s.URLPos, CodeMCP, "keep one: a server is stdio or HTTP", "%s: give command or url, not both", who)
		case s.URL != "":
			if len(s.Args) > 0 || len(s.Env) > 0 || s.Cwd != "" {
				v.errorf(s.URLPos, CodeMCP, "args, env and cwd are for stdio servers (command)", "%s: an HTTP server takes no args, env or cwd", who)
			}
			v.checkMCPURL(s, who)
		default:
			if len(s.Headers) > 0 {
				v.errorf(s.CommandPos, CodeMCP, "headers are for HTTP servers (url); pass values to a stdio server with env", "%s: a stdio server takes no headers", who)
			}
			if strings.Contains(s.Command, "${{") {
				v.errorf(s.CommandPos, CodeMCP, "", "%s: command cannot use expressions", who)
			}
		}
		for _, e := range s.Env {
			if !isIdent(e.Value) {
				v.errorf(e.Pos, CodeBadName, "", "%s: env: %q is not an environment variable name ([A-Za-z_][A-Za-z0-9_]*)", who, e.Value)
			}
		}
		for _, k := range sortedKeys(s.Headers) {
			for _, m := range secretRefRE.FindAllStringSubmatch(s.Headers[k], -1) {
				if !slices.Contains(secrets, m[1]) {
					v.errorf(s.HeaderPos[k], CodeUnknownSecret, fmt.Sprintf("add %s to `secrets:`", m[1]), "%s: headers.%s: secret %q is not declared", who, k, m[1])
				}
			}
		}
		if s.Pool.Value != "" {
			if _, ok := v.pools[s.Pool.Value]; !ok {
				hint := didYouMean(s.Pool.Value, sortedKeys(v.pools))
				if hint == "" {
					hint = "declare it under `pools:`"
				}
				v.errorf(s.Pool.Pos, CodeUnknownPool, hint, "%s: unknown pool %q", who, s.Pool.Value)
			}
		}
		if s.Tools != nil && len(s.Tools) == 0 {
			v.errorf(s.Pos, CodeMCP, "remove `tools:` to offer every tool", "%s: tools is an empty list: no tool could be called", who)
		}
	}
}

func (v *validator) checkMCPURL(s *MCPServer, who string) {
	if strings.Contains(s.URL, "${{") {
		v.errorf(s.URLPos, CodeMCP, "put credentials in headers, which may use ${{ secrets.X }}", "%s: url cannot use expressions", who)
		return
	}
	u, err := url.Parse(s.URL)
	switch {
	case err != nil:
		v.errorf(s.URLPos, CodeMCP, "", "%s: url: %v", who, err)
	case u.Scheme != "http" && u.Scheme != "https":
		v.errorf(s.URLPos, CodeMCP, "write e.g. http://127.0.0.1:8931/mcp", "%s: url must be http:// or https://, got %q", who, s.URL)
	case u.Host == "":
		v.errorf(s.URLPos, CodeMCP, "write e.g. http://127.0.0.1:8931/mcp", "%s: url has no host", who)
	}
}

// mcpServer returns the declaration named name, or nil.
func (v *validator) mcpServer(name string) *MCPServer {
	for _, s := range v.w.MCP {
		if s.Name == name {
			return s
		}
	}
	return nil
}

func (v *validator) mcpNames() []string {
	out := make([]string, len(v.w.MCP))
	for i, s := range v.w.MCP {
		out[i] = s.Name
	}
	return out
}

// mcpToolRef checks an llm_call tool name of the form server.tool or
// server.*; it reports false when the name has no dot (a declared tool's).
func (v *validator) mcpToolRef(t *yaml.Node, who string) bool {
	server, tool, ok := strings.Cut(t.Value, ".")
	if !ok {
		return false
	}
	s := v.mcpServer(server)
	if s == nil {
		hint := didYouMean(server, v.mcpNames())
		if hint == "" {
			hint = "declare it under `mcp:`"
		}
		v.errorf(posOf(t), CodeUnknownTool, hint, "%s: tool %q names mcp server %q, which is not declared", who, t.Value, server)
		return true
	}
	if tool == "" {
		v.errorf(posOf(t), CodeUnknownTool, fmt.Sprintf("write %s.TOOL or %s.*", server, server), "%s: tool %q names no tool", who, t.Value)
		return true
	}
	v.mcpAllowed(s, tool, posOf(t), who)
	return true
}

// mcpAllowed reports a tool that the server's `tools:` allowlist hides.
func (v *validator) mcpAllowed(s *MCPServer, tool string, p Pos, who string) {
	if s.Tools == nil || tool == "*" {
		return
	}
	names := make([]string, len(s.Tools))
	for i, t := range s.Tools {
		if t.Value == tool {
			return
		}
		names[i] = t.Value
	}
	hint := didYouMean(tool, names)
	if hint == "" {
		hint = "add it to the server's `tools:`, or remove that allowlist"
	}
	v.errorf(p, CodeUnknownTool, hint, "%s: tool %q is not in the tools of mcp server %s", who, tool, s.Name)
}

// mcpCallRefs checks the literal MCP server (sn) and tool (tn) a node
// names; either may be nil when not given.
func (v *validator) mcpCallRefs(who string, sn, tn *yaml.Node) {
	if sn == nil || sn.Kind != yaml.ScalarNode {
		return
	}
	s := v.mcpServer(sn.Value)
	if s == nil {
		hint := didYouMean(sn.Value, v.mcpNames())
		if hint == "" {
			hint = "declare it under `mcp:`"
		}
		v.errorf(posOf(sn), CodeUnknownTool, hint, "%s: unknown mcp server %q", who, sn.Value)
		return
	}
	if tn != nil && tn.Kind == yaml.ScalarNode {
		v.mcpAllowed(s, tn.Value, posOf(tn), who)
	}
}
