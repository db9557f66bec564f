package runner

import (
	"fmt"
	"io"
	"strings"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// WriteMermaid draws the workflow as a Mermaid flowchart, from the declared
// edges only: plain edges are solid, conditional edges dotted and labelled
// with their condition (or "else"), joins drawn as `a & b --> c` labelled
// "join", and for_each nodes as subroutine boxes naming their loop and cap.
// A front-matter block carries the workflow's name as the title.
func WriteMermaid(w io.Writer, wf *spec.Workflow) error {
	var b strings.Builder
	if wf.Name != "" {
		fmt.Fprintf(&b, "---\ntitle: %s\n---\n", wf.Name)
	}
	b.WriteString("flowchart TD\n")
	b.WriteString("  START([START])\n")
	for _, n := range wf.Nodes {
		fmt.Fprintf(&b, "  %s\n", mermaidNode(n))
	}
	b.WriteString("  END([END])\n")
	// A node listed twice, or an edge written twice, is drawn once: the
	// node runs once per step however often it is triggered.
	drawn := map[string]bool{}
	line := func(format string, args ...any) {
		l := fmt.Sprintf(format, args...)
		if !drawn[l] {
			drawn[l] = true
			b.WriteString(l)
		}
	}
	for _, e := range wf.Edges {
		from := mermaidFrom(e.From)
		switch {
		case len(e.When) > 0 || e.HasElse:
			for _, c := range e.When {
				label := ""
				if c.IfTree != nil && c.IfTree.Kind == spec.ValueExpr {
					label = c.IfTree.Src
				}
				for _, to := range c.To {
					line("  %s -.->|\"%s\"| %s\n", from, mermaidText(label), mermaidID(to.Value))
				}
			}
			for _, to := range e.Else {
				line("  %s -.->|\"else\"| %s\n", from, mermaidID(to.Value))
			}
		case e.IsJoin():
			for _, to := range e.To {
				line("  %s -->|\"join\"| %s\n", from, mermaidID(to.Value))
			}
		default:
			for _, to := range e.To {
				line("  %s --> %s\n", from, mermaidID(to.Value))
			}
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

func mermaidNode(n *spec.Node) string {
	label := n.Name + "<br/><i>" + n.Type + "</i>"
	if e := n.ForEachTree; e != nil {
		loop := "for_each"
		if e.Kind == spec.ValueExpr && e.Src != "" {
			loop += " " + e.Src
		}
		if n.Concurrency > 0 {
			loop += fmt.Sprintf(" · max %d", n.Concurrency)
		}
		return fmt.Sprintf("%s[[\"%s<br/>%s\"]]", mermaidID(n.Name), mermaidText(label), mermaidText(loop))
	}
	if t, ok := nodes.Lookup(n.Type); ok && nodes.CapabilitiesOf(t).Pauses {
		return fmt.Sprintf("%s{{\"%s\"}}", mermaidID(n.Name), mermaidText(label))
	}
	return fmt.Sprintf("%s[\"%s\"]", mermaidID(n.Name), mermaidText(label))
}

func mermaidFrom(from []spec.Name) string {
	ids := make([]string, len(from))
	for i, f := range from {
		ids[i] = mermaidID(f.Value)
	}
	return strings.Join(ids, " & ")
}

// mermaidKeywords are words Mermaid's flowchart grammar reserves; a node
// with such a name gets a prefixed id (its label still shows the name).
var mermaidKeywords = map[string]bool{
	"end": true, "graph": true, "subgraph": true, "flowchart": true, "style": true,
	"classdef": true, "class": true, "click": true, "linkstyle": true,
	"direction": true, "call": true, "href": true, "default": true,
}

func mermaidID(name string) string {
	if name == spec.Start || name == spec.End {
		return name
	}
	if mermaidKeywords[strings.ToLower(name)] || name == "START_" || name == "END_" {
		return "n_" + name
	}
	return name
}

// mermaidText escapes a label for a quoted Mermaid string. Mermaid reads
// entity codes (#quot; #lt; …) inside quoted labels; HTML tags we emit
// ourselves (<br/>, <i>) are kept by escaping only user text.
func mermaidText(s string) string {
	r := strings.NewReplacer(
		`"`, "#quot;",
		"<br/>", "<br/>", "<i>", "<i>", "</i>", "</i>",
		"<", "#lt;", ">", "#gt;",
		"\n", " ", "|", "#124;", "#", "#35;",
	)
	return r.Replace(s)
}
