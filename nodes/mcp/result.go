package mcp

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/lgx-run/lgx/spec"
	sdk "github.com/modelcontextprotocol/go-sdk/mcp"
)

// MapResult maps a CallToolResult: text items joined by newlines, media
// items named by type and size (a model cannot read base64), resource
// links by URI, embedded text resources by their text; structured content
// decoded to JSON values.
func MapResult(res *sdk.CallToolResult) *Result {
	out := &Result{IsError: res.IsError}
	parts := make([]string, 0, len(res.Content))
	for _, c := range res.Content {
		switch c := c.(type) {
		case *sdk.TextContent:
			parts = append(parts, c.Text)
		case *sdk.ImageContent:
			parts = append(parts, fmt.Sprintf("[image %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *sdk.AudioContent:
			parts = append(parts, fmt.Sprintf("[audio %s, %d bytes]", c.MIMEType, len(c.Data)))
		case *sdk.ResourceLink:
			parts = append(parts, fmt.Sprintf("[resource %s]", c.URI))
		case *sdk.EmbeddedResource:
			if c.Resource != nil && c.Resource.Text != "" {
				parts = append(parts, c.Resource.Text)
			} else if c.Resource != nil {
				parts = append(parts, fmt.Sprintf("[resource %s, %d bytes]", c.Resource.URI, len(c.Resource.Blob)))
			}
		default:
			if b, err := json.Marshal(c); err == nil {
				parts = append(parts, string(b))
			}
		}
	}
	out.Text = strings.Join(parts, "\n")
	if res.StructuredContent != nil {
		// Round-trip through JSON: the SDK may hold json.RawMessage or a
		// typed value, lgx works with plain JSON values.
		if b, err := json.Marshal(res.StructuredContent); err == nil {
			var v any
			if json.Unmarshal(b, &v) == nil {
				out.Structured = v
			}
		}
	}
	return out
}

// schemaMap turns a tool's input schema, as the SDK holds it, into a JSON
// value.
func schemaMap(s any) map[string]any {
	if s == nil {
		return nil
	}
	if m, ok := s.(map[string]any); ok {
		return m
	}
	b, err := json.Marshal(s)
	if err != nil {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(b, &m) != nil {
		return nil
	}
	return m
}

func suggest(s string, candidates []string) string { return spec.Suggest(s, candidates) }
