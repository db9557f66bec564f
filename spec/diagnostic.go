package spec

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Severity says whether a diagnostic makes a workflow invalid.
type Severity string

// Severities. Errors make `lgx validate` exit 2; warnings alone do not.
const (
	SeverityError   Severity = "error"
	SeverityWarning Severity = "warning"
)

// Diagnostic codes: short, kebab-case and stable, for tests, tools and
// `--format json` consumers.
const (
	CodeYAML            = "yaml"             // the file is not YAML
	CodeTooLarge        = "too-large"        // file size, alias expansion or nesting beyond the limits
	CodeUnknownKey      = "unknown-key"      // a key the format does not know
	CodeMissingKey      = "missing-key"      // a required key is absent
	CodeBadValue        = "bad-value"        // a value of the wrong kind or out of range
	CodeBadVersion      = "bad-version"      // `lgx:` is not 1
	CodeBadName         = "bad-name"         // a name that does not match its pattern
	CodeDuplicate       = "duplicate"        // a name declared twice
	CodeReserved        = "reserved"         // START or END used as a declared name
	CodeBadDuration     = "bad-duration"     // not a Go duration
	CodeBadRate         = "bad-rate"         // not N/s, N/min or N/h
	CodeBadSize         = "bad-size"         // not a byte size
	CodeBadType         = "bad-type"         // unknown state type
	CodeBadReducer      = "bad-reducer"      // unknown reducer, or one that does not fit the type
	CodeBadRetryOn      = "bad-retry-on"     // a `retry.on` entry that is neither a kind nor a status
	CodeUnknownNode     = "unknown-node"     // an edge names a node that does not exist
	CodeUnknownType     = "unknown-type"     // a node type missing from the catalog
	CodeUnknownField    = "unknown-field"    // a `with` field the type does not take
	CodeMissingField    = "missing-field"    // a required `with` field is absent
	CodeFieldType       = "field-type"       // a literal `with` value of the wrong type
	CodeOneOf           = "one-of"           // mutually exclusive `with` fields
	CodeUnknownState    = "unknown-state"    // a write to (or input of) an undeclared state key
	CodeWriteType       = "write-type"       // a write that cannot fit its state key's type
	CodeUnknownPool     = "unknown-pool"     // a pool that is not declared
	CodeUnknownProvider = "unknown-provider" // an llm_call provider that is not declared
	CodeUnknownTool     = "unknown-tool"     // an llm_call tool that is not declared
	CodeUnknownSecret   = "unknown-secret"   // a secret that is not declared
	CodeExpr            = "expr"             // an expression that does not compile
	CodeTemplate        = "template"         // a type's Prepare rejected a static field
	CodeEdge            = "edge"             // a malformed edge
	CodeUnreachable     = "unreachable"      // a node no path from START reaches
	CodeNoElse          = "no-else"          // a `when` without `else`
	CodeJoin            = "join"             // a join whose sources cannot all complete
	CodeReplaceConflict = "replace-conflict" // two writers of a replace key in one super-step
	CodeNoEntry         = "no-entry"         // no edge leaves START
	CodeCapability      = "capability"       // an llm_call uses a capability its provider or a fallback lacks
	CodeMCP             = "mcp"              // a malformed `mcp:` server declaration, or a tool a server lacks
	CodeSubgraphCycle   = "subgraph-cycle"   // a subgraph that calls itself, directly or not
	CodeSubgraphMissing = "subgraph-missing" // a subgraph file that does not exist
	CodeSubgraphRead    = "subgraph-unreadable"
	CodeNoFile          = "no-file" // a path given to validate that is missing, unreadable or holds no workflow
)

// Diagnostic is one problem found in a workflow file.
type Diagnostic struct {
	File string
	Pos  Pos
	// End is the position of the last character the diagnostic covers,
	// when it covers a known token (zero otherwise); see AddRanges.
	End      Pos
	Severity Severity
	Code     string
	Message  string
	Hint     string
}

// String renders the diagnostic as `file:line:col: severity: message [code]`.
func (d Diagnostic) String() string {
	return fmt.Sprintf("%s: %s: %s [%s]", d.location(), d.Severity, d.Message, d.Code)
}

func (d Diagnostic) location() string {
	file := d.File
	if file == "" {
		file = "<input>"
	}
	if d.Pos.Line == 0 {
		return file
	}
	return fmt.Sprintf("%s:%d:%d", file, d.Pos.Line, d.Pos.Col)
}

// Diagnostics is every problem found in one or more files.
type Diagnostics []Diagnostic

// HasErrors reports whether any diagnostic is an error.
func (ds Diagnostics) HasErrors() bool {
	for _, d := range ds {
		if d.Severity == SeverityError {
			return true
		}
	}
	return false
}

// Errors returns only the errors.
func (ds Diagnostics) Errors() Diagnostics {
	var out Diagnostics
	for _, d := range ds {
		if d.Severity == SeverityError {
			out = append(out, d)
		}
	}
	return out
}

// Sort orders the diagnostics by file, line and column; diagnostics at the
// same place keep the order in which they were found.
func (ds Diagnostics) Sort() {
	sort.SliceStable(ds, func(i, j int) bool {
		a, b := ds[i], ds[j]
		if a.File != b.File {
			return a.File < b.File
		}
		if a.Pos.Line != b.Pos.Line {
			return a.Pos.Line < b.Pos.Line
		}
		return a.Pos.Col < b.Pos.Col
	})
}

// Error makes Diagnostics usable as an error (e.g. ds.Errors() from a
// child workflow): the first error, and how many more there are.
func (ds Diagnostics) Error() string {
	errs := ds.Errors()
	switch len(errs) {
	case 0:
		return "no errors"
	case 1:
		return errs[0].String()
	default:
		return fmt.Sprintf("%s (and %d more errors)", errs[0], len(errs)-1)
	}
}

// String lists the diagnostics one per line.
func (ds Diagnostics) String() string {
	var b strings.Builder
	for _, d := range ds {
		b.WriteString(d.String())
		b.WriteByte('\n')
	}
	return b.String()
}

// WriteText writes each diagnostic as `file:line:col: severity: message
// [code]`, followed by the source line with a caret under the column (when
// sources holds the file's bytes) and the hint, if any.
func (ds Diagnostics) WriteText(w io.Writer, sources map[string][]byte) error {
	var buf bytes.Buffer
	for _, d := range ds {
		buf.WriteString(d.String())
		buf.WriteByte('\n')
		if line, ok := sourceLine(sources[d.File], d.Pos.Line); ok && d.Pos.Col > 0 {
			line, pad := excerpt(strings.ReplaceAll(line, "\t", " "), d.Pos.Col-1)
			fmt.Fprintf(&buf, "  %s\n", line)
			fmt.Fprintf(&buf, "  %s^\n", strings.Repeat(" ", pad))
		}
		if d.Hint != "" {
			fmt.Fprintf(&buf, "  hint: %s\n", d.Hint)
		}
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// excerptWidth is the most characters of a source line WriteText shows.
const excerptWidth = 120

// excerpt cuts a long line to a window around the 0-based rune column col
// (marking cut ends with …) and returns it with the caret's new column.
func excerpt(line string, col int) (string, int) {
	runes := []rune(line)
	if col > len(runes) {
		col = len(runes)
	}
	if len(runes) <= excerptWidth {
		return line, col
	}
	start := max(0, col-excerptWidth/2)
	end := min(len(runes), start+excerptWidth)
	start = max(0, end-excerptWidth)
	out := string(runes[start:end])
	pad := col - start
	if start > 0 {
		out = "…" + out
		pad++
	}
	if end < len(runes) {
		out += "…"
	}
	return out, pad
}

// sourceLine returns the 1-based line of src without its line break.
func sourceLine(src []byte, line int) (string, bool) {
	if src == nil || line < 1 {
		return "", false
	}
	for i := 1; i < line; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return "", false
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return strings.TrimRight(string(src), "\r"), true
}

// jsonDiagnostic is the `--format json` shape of one diagnostic.
type jsonDiagnostic struct {
	File     string   `json:"file"`
	Line     int      `json:"line"`
	Column   int      `json:"column"`
	EndLine  int      `json:"end_line,omitempty"`
	EndCol   int      `json:"end_column,omitempty"`
	Severity Severity `json:"severity"`
	Code     string   `json:"code"`
	Message  string   `json:"message"`
	Hint     string   `json:"hint,omitempty"`
}

// WriteJSON writes the diagnostics as one JSON array of {file, line, column,
// end_line?, end_column?, severity, code, message, hint?}; `[]` when there
// are none.
func (ds Diagnostics) WriteJSON(w io.Writer) error {
	out := make([]jsonDiagnostic, 0, len(ds))
	for _, d := range ds {
		out = append(out, jsonDiagnostic{
			File: d.File, Line: d.Pos.Line, Column: d.Pos.Col, EndLine: d.End.Line, EndCol: d.End.Col,
			Severity: d.Severity, Code: d.Code, Message: d.Message, Hint: d.Hint,
		})
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // people and jq read this: keep <, > and & as they are
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}

// WriteGitHub writes GitHub Actions workflow commands,
// `::error file=F,line=L,col=C::message [code]`, so that diagnostics show
// up as annotations on a pull request. The form is the one SPEC §7 fixes:
// no title or end position (the code ends the message; ranges are in
// --format json and sarif), see docs/decisions.md.
func (ds Diagnostics) WriteGitHub(w io.Writer) error {
	var buf bytes.Buffer
	for _, d := range ds {
		fmt.Fprintf(&buf, "::%s file=%s", d.Severity, ghProperty(d.File))
		if d.Pos.Line > 0 {
			fmt.Fprintf(&buf, ",line=%d,col=%d", d.Pos.Line, d.Pos.Col)
		}
		msg := d.Message + " [" + d.Code + "]"
		if d.Hint != "" {
			msg += "\nhint: " + d.Hint
		}
		fmt.Fprintf(&buf, "::%s\n", ghData(msg))
	}
	_, err := w.Write(buf.Bytes())
	return err
}

// ghData escapes a workflow command's message.
func ghData(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A").Replace(s)
}

// ghProperty escapes a workflow command's property value.
func ghProperty(s string) string {
	return strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C").Replace(s)
}
