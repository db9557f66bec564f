package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/spec"
)

// nodesOptions are lgx nodes's flag and optional argument.
type nodesOptions struct {
	typ    string // "" = the whole catalog
	format string
}

func (a *app) nodesCmd() *cobra.Command {
	var opts nodesOptions
	cmd := &cobra.Command{
		Use:   "nodes [TYPE]",
		Short: "List the node catalog, or describe one type's fields",
		Long: `nodes lists the catalog of node types with a summary of each. Given a
TYPE, it prints the type's inputs (the fields of a node's "with:" block: name,
type, default, whether required, meaning) and the fields of its result, which
a node's "output:" reads as ${{ result.FIELD }}.`,
		Example: `  lgx nodes
  lgx nodes http_fetch
  lgx nodes -o json llm_call | jq '.with[].name'`,
		Args: func(cmd *cobra.Command, args []string) error {
			if err := cobra.MaximumNArgs(1)(cmd, args); err != nil {
				return usageErr(err)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			opts.typ = ""
			if len(args) > 0 {
				opts.typ = args[0]
			}
			return a.runNodes(cmd.Context(), opts)
		},
	}
	cmd.Flags().StringVarP(&opts.format, "output", "o", "text", "output format: text or json")
	return cmd
}

// runNodes prints the node catalog, or one type's fields.
func (a *app) runNodes(_ context.Context, opts nodesOptions) error {
	if opts.format != "text" && opts.format != "json" {
		return usageErrf("-o must be text or json, not %q", opts.format)
	}
	if opts.typ == "" {
		return writeCatalog(a.ios.Out, opts.format)
	}
	t, ok := nodes.Lookup(opts.typ)
	if !ok {
		return unknownTypeErr(opts.typ)
	}
	return writeNodeType(a.ios.Out, opts.format, t)
}

// unknownTypeErr is the usage error for a TYPE the catalog lacks.
func unknownTypeErr(name string) error {
	msg := fmt.Sprintf("unknown node type %q", name)
	if s := spec.Suggest(name, nodes.Names()); s != "" {
		msg += "; did you mean " + s + "?"
	}
	return usageErrf("%s (lgx nodes lists the types: %s)", msg, strings.Join(nodes.Names(), ", "))
}

// typeSummary is one entry of `lgx nodes -o json`.
type typeSummary struct {
	Name    string `json:"name"`
	Summary string `json:"summary"`
}

// typeDetail is `lgx nodes -o json TYPE`.
type typeDetail struct {
	Name    string        `json:"name"`
	Summary string        `json:"summary"`
	With    []fieldDetail `json:"with"`
	Result  []fieldDetail `json:"result"`
	OneOf   []oneOfDetail `json:"one_of,omitempty"`
}

type fieldDetail struct {
	Name     string   `json:"name"`
	Type     string   `json:"type"`
	Enum     []string `json:"enum,omitempty"`
	Default  string   `json:"default,omitempty"`
	Required bool     `json:"required,omitempty"`
	Static   bool     `json:"static,omitempty"`
	Doc      string   `json:"doc"`
}

type oneOfDetail struct {
	Fields   []string `json:"fields"`
	Required bool     `json:"required"`
}

func writeCatalog(w io.Writer, format string) error {
	names := nodes.Names()
	if format == "json" {
		list := make([]typeSummary, 0, len(names))
		for _, n := range names {
			t, _ := nodes.Lookup(n)
			list = append(list, typeSummary{Name: n, Summary: t.Doc().Summary})
		}
		return writeJSON(w, list)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TYPE\tSUMMARY")
	for _, n := range names {
		t, _ := nodes.Lookup(n)
		fmt.Fprintf(tw, "%s\t%s\n", n, foldSpace(t.Doc().Summary))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	_, err := fmt.Fprintln(w, "\nlgx nodes TYPE shows a type's with fields and result.")
	return err
}

func writeNodeType(w io.Writer, format string, t nodes.Type) error {
	doc := t.Doc()
	if format == "json" {
		d := typeDetail{Name: t.Name(), Summary: doc.Summary, With: fieldDetails(doc.With), Result: fieldDetails(doc.Result)}
		for _, g := range doc.OneOf {
			d.OneOf = append(d.OneOf, oneOfDetail{Fields: g.Fields, Required: g.Required})
		}
		return writeJSON(w, d)
	}
	fmt.Fprintf(w, "%s: %s\n\nwith:\n", t.Name(), foldSpace(doc.Summary))
	if len(doc.With) == 0 {
		fmt.Fprintln(w, "  (no fields)")
	} else {
		tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "  FIELD\tTYPE\tDEFAULT\tREQUIRED\tMEANING")
		for _, f := range doc.With {
			req := ""
			if f.Required {
				req = "yes"
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", f.Name, fieldType(f), f.Default, req, fieldMeaning(f))
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	for _, g := range doc.OneOf {
		if g.Required {
			fmt.Fprintf(w, "  Exactly one of: %s.\n", strings.Join(g.Fields, ", "))
		} else {
			fmt.Fprintf(w, "  At most one of: %s.\n", strings.Join(g.Fields, ", "))
		}
	}
	fmt.Fprintln(w, "\nresult:")
	if doc.NoResult {
		fmt.Fprintln(w, "  none: result is null in `output`")
		return nil
	}
	if len(doc.Result) == 0 {
		fmt.Fprintln(w, "  (see the summary)")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  FIELD\tTYPE\tMEANING")
	for _, f := range doc.Result {
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", f.Name, fieldType(f), foldSpace(f.Doc))
	}
	return tw.Flush()
}

// fieldType is a field's type, with its allowed values when it has an enum.
func fieldType(f nodes.Field) string {
	if len(f.Enum) > 0 {
		return f.Type + " (" + strings.Join(f.Enum, "|") + ")"
	}
	return f.Type
}

// fieldMeaning is a field's doc, noting fields whose ${{ }} is not an
// expression.
func fieldMeaning(f nodes.Field) string {
	m := foldSpace(f.Doc)
	if f.Static {
		m += " [static: used as written, no ${{ }}]"
	}
	return m
}

func fieldDetails(fs []nodes.Field) []fieldDetail {
	out := make([]fieldDetail, 0, len(fs))
	for _, f := range fs {
		out = append(out, fieldDetail{Name: f.Name, Type: f.Type, Enum: f.Enum, Default: f.Default,
			Required: f.Required, Static: f.Static, Doc: f.Doc})
	}
	return out
}

// oneLine folds a doc string onto one line so that table rows stay rows.
func foldSpace(s string) string { return strings.Join(strings.Fields(s), " ") }
