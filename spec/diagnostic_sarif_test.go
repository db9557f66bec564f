package spec

import (
	"bytes"
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// sarifSchema compiles the hand-written SARIF 2.1.0 subset schema (see
// testdata/sarif/README.md for why it is not the official file).
func sarifSchema(t *testing.T) *jsonschema.Schema {
	t.Helper()
	f, err := os.Open("testdata/sarif/sarif-2.1.0-subset.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	doc, err := jsonschema.UnmarshalJSON(f)
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("sarif.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("sarif.json")
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestWriteSARIF(t *testing.T) {
	ds := Diagnostics{
		{File: "flows/a b.yaml", Pos: Pos{2, 7}, End: Pos{2, 14}, Severity: SeverityError, Code: CodeBadName, Message: `name "<x>" & co`, Hint: "write bad-name"},
		{File: "flows/a b.yaml", Pos: Pos{9, 3}, Severity: SeverityWarning, Code: CodeUnreachable, Message: "node orphan is unreachable"},
		{File: "flows/a b.yaml", Severity: SeverityError, Code: CodeBadName, Message: "whole file"},
	}
	var buf bytes.Buffer
	if err := ds.WriteSARIF(&buf, SARIFTool{Name: "lgx", Version: "1.2.3", InformationURI: "https://github.com/lgx-run/lgx"}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(buf.String(), `\u003c`) {
		t.Errorf("HTML-escaped output:\n%s", buf.String())
	}
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(buf.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	if err := sarifSchema(t).Validate(inst); err != nil {
		t.Fatalf("SARIF does not validate: %v\n%s", err, buf.String())
	}
	var log sarifLog
	if err := json.Unmarshal(buf.Bytes(), &log); err != nil {
		t.Fatal(err)
	}
	run := log.Runs[0]
	if got := len(run.Tool.Driver.Rules); got != 2 {
		t.Fatalf("%d rules, want one per code (2)", got)
	}
	for _, r := range run.Results {
		if run.Tool.Driver.Rules[r.RuleIndex].ID != r.RuleID {
			t.Errorf("result %s points at rule %d (%s)", r.RuleID, r.RuleIndex, run.Tool.Driver.Rules[r.RuleIndex].ID)
		}
	}
	first := run.Results[0]
	if loc := first.Locations[0].PhysicalLocation; loc.ArtifactLocation.URI != "flows/a%20b.yaml" || loc.ArtifactLocation.URIBaseID != "%SRCROOT%" {
		t.Errorf("artifact = %+v", loc.ArtifactLocation)
	} else if *loc.Region != (sarifRegion{StartLine: 2, StartColumn: 7, EndLine: 2, EndColumn: 15}) {
		t.Errorf("region = %+v (endColumn is exclusive in SARIF)", *loc.Region)
	}
	if first.Level != "error" || run.Results[1].Level != "warning" {
		t.Errorf("levels %s, %s", first.Level, run.Results[1].Level)
	}
	if !strings.Contains(first.Message.Text, "hint: write bad-name") {
		t.Errorf("message %q lacks the hint", first.Message.Text)
	}
	if run.Results[2].Locations[0].PhysicalLocation.Region != nil {
		t.Errorf("a diagnostic without a line got a region")
	}
}

// TestSARIFSchemaCatchesMistakes proves the subset schema is not vacuous.
func TestSARIFSchemaCatchesMistakes(t *testing.T) {
	bad := []string{
		`{"version":"2.1.0"}`,
		`{"version":"2.0.0","runs":[{"tool":{"driver":{"name":"lgx"}}}]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"lgx","informationURI":"x"}}}]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"lgx"}},"results":[{"message":{"text":"m"},"level":"fatal"}]}]}`,
		`{"version":"2.1.0","runs":[{"tool":{"driver":{"name":"lgx"}},"results":[{"message":{"text":"m"},"locations":[{"physicalLocation":{"artifactLocation":{"uri":"a"},"region":{"startLine":0}}}]}]}]}`,
	}
	s := sarifSchema(t)
	for _, doc := range bad {
		inst, err := jsonschema.UnmarshalJSON(strings.NewReader(doc))
		if err != nil {
			t.Fatal(err)
		}
		if s.Validate(inst) == nil {
			t.Errorf("schema accepts %s", doc)
		}
	}
}

func TestWriteSARIFEmpty(t *testing.T) {
	var buf bytes.Buffer
	if err := (Diagnostics{}).WriteSARIF(&buf, SARIFTool{Name: "lgx"}); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"results": []`) || !strings.Contains(buf.String(), `"rules": []`) {
		t.Errorf("empty log must still list results and rules:\n%s", buf.String())
	}
}

// TestEveryCodeHasHelp keeps codeHelp in step with the Code constants.
func TestEveryCodeHasHelp(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "diagnostic.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	ast.Inspect(f, func(node ast.Node) bool {
		vs, ok := node.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range vs.Names {
			if !strings.HasPrefix(name.Name, "Code") {
				continue
			}
			n++
			lit := vs.Values[i].(*ast.BasicLit)
			code := strings.Trim(lit.Value, `"`)
			if codeHelp[code] == "" {
				t.Errorf("%s (%q) has no entry in codeHelp", name.Name, code)
			}
		}
		return true
	})
	if n < 30 {
		t.Fatalf("found only %d Code constants; did they move?", n)
	}
}
