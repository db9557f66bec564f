package spec

import (
	"encoding/json"
	"io"
	"path/filepath"
	"sort"
	"strings"
)

// codeHelp describes each diagnostic code in a sentence: the SARIF rule's
// description, which code-scanning tools show next to every result.
var codeHelp = map[string]string{
	CodeYAML:            "The file is not valid YAML.",
	CodeTooLarge:        "The file size, alias expansion or nesting is beyond lgx's limits.",
	CodeUnknownKey:      "A key the workflow format does not know.",
	CodeMissingKey:      "A required key is absent.",
	CodeBadValue:        "A value of the wrong kind or out of range.",
	CodeBadVersion:      "The `lgx:` format version is not 1.",
	CodeBadName:         "A name that does not match its pattern.",
	CodeDuplicate:       "A name declared twice.",
	CodeReserved:        "START or END used as a declared name.",
	CodeBadDuration:     "A value that is not a Go duration such as 500ms or 2m.",
	CodeBadRate:         "A rate that is not N/s, N/min or N/h.",
	CodeBadSize:         "A value that is not a byte size such as 2MiB.",
	CodeBadType:         "An unknown state type.",
	CodeBadReducer:      "An unknown reducer, or one that does not fit the key's type.",
	CodeBadRetryOn:      "A `retry.on` entry that is neither an error kind nor an HTTP status.",
	CodeUnknownNode:     "An edge names a node that does not exist.",
	CodeUnknownType:     "A node type missing from the catalog (see `lgx nodes`).",
	CodeUnknownField:    "A `with` field the node type does not take.",
	CodeMissingField:    "A required `with` field is absent.",
	CodeFieldType:       "A literal `with` value of the wrong type.",
	CodeOneOf:           "Mutually exclusive `with` fields given together.",
	CodeUnknownState:    "A write to, or input of, an undeclared state key.",
	CodeWriteType:       "A write whose value cannot fit its state key's type.",
	CodeUnknownPool:     "A pool that is not declared.",
	CodeUnknownProvider: "An llm_call provider that is not declared.",
	CodeUnknownTool:     "An llm_call tool that is not declared.",
	CodeUnknownSecret:   "A secret that is not declared under `secrets:`.",
	CodeExpr:            "An expression that does not compile against the state schema.",
	CodeTemplate:        "A node type rejected a static field.",
	CodeEdge:            "A malformed edge.",
	CodeUnreachable:     "A node that no path from START reaches.",
	CodeNoElse:          "A `when` edge without `else`: when no case matches, nothing fires.",
	CodeJoin:            "A join whose sources cannot all complete.",
	CodeReplaceConflict: "Two writers of a replace key in one super-step.",
	CodeNoEntry:         "No edge leaves START.",
	CodeCapability:      "An llm_call uses a capability (tools, structured output) that its provider or a fallback declares it lacks.",
	CodeMCP:             "A malformed `mcp:` server declaration, or (with --online) a tool or argument the server does not have.",
	CodeSubgraphCycle:   "A subgraph workflow that calls itself, directly or through other subgraphs.",
	CodeSubgraphMissing: "A subgraph workflow file that does not exist.",
	CodeSubgraphRead:    "A subgraph workflow file that cannot be read.",
	CodeNoFile:          "A path given to lgx validate that is missing, cannot be read, or is a directory holding no workflow.",
}

// SARIFTool names the program in a SARIF log.
type SARIFTool struct {
	Name, Version, InformationURI string
}

// sarifLog and the types below are the subset of SARIF 2.1.0 lgx writes.
type sarifLog struct {
	Schema  string     `json:"$schema"`
	Version string     `json:"version"`
	Runs    []sarifRun `json:"runs"`
}

type sarifRun struct {
	Tool    sarifToolObj  `json:"tool"`
	Results []sarifResult `json:"results"`
}

type sarifToolObj struct {
	Driver sarifDriver `json:"driver"`
}

type sarifDriver struct {
	Name           string      `json:"name"`
	Version        string      `json:"version,omitempty"`
	InformationURI string      `json:"informationUri,omitempty"`
	Rules          []sarifRule `json:"rules"`
}

type sarifText struct {
	Text string `json:"text"`
}

type sarifRule struct {
	ID               string    `json:"id"`
	ShortDescription sarifText `json:"shortDescription"`
	Help             sarifText `json:"help"`
}

type sarifResult struct {
	RuleID    string          `json:"ruleId"`
	RuleIndex int             `json:"ruleIndex"`
	Level     string          `json:"level"`
	Message   sarifText       `json:"message"`
	Locations []sarifLocation `json:"locations"`
}

type sarifLocation struct {
	PhysicalLocation sarifPhysical `json:"physicalLocation"`
}

type sarifPhysical struct {
	ArtifactLocation sarifArtifact `json:"artifactLocation"`
	Region           *sarifRegion  `json:"region,omitempty"`
}

type sarifArtifact struct {
	URI       string `json:"uri"`
	URIBaseID string `json:"uriBaseId,omitempty"`
}

type sarifRegion struct {
	StartLine   int `json:"startLine"`
	StartColumn int `json:"startColumn,omitempty"`
	EndLine     int `json:"endLine,omitempty"`
	EndColumn   int `json:"endColumn,omitempty"`
}

// WriteSARIF writes the diagnostics as one SARIF 2.1.0 log for code
// scanning (GitHub's upload-sarif action, IDE viewers). Rule ids are the
// diagnostic codes, so they stay stable across releases; each rule's help
// is its description, and each result's message carries its own hint.
// File names are written as given, with forward slashes, relative to
// %SRCROOT% unless absolute: the caller makes them repository-relative.
func (ds Diagnostics) WriteSARIF(w io.Writer, tool SARIFTool) error {
	codes := map[string]bool{}
	for _, d := range ds {
		codes[d.Code] = true
	}
	ids := make([]string, 0, len(codes))
	for c := range codes {
		ids = append(ids, c)
	}
	sort.Strings(ids)
	index := make(map[string]int, len(ids))
	rules := make([]sarifRule, len(ids))
	for i, id := range ids {
		index[id] = i
		help := codeHelp[id]
		if help == "" {
			help = "lgx diagnostic " + id + "."
		}
		rules[i] = sarifRule{ID: id, ShortDescription: sarifText{help}, Help: sarifText{help + " Run `lgx validate` on the file for the source excerpt and a hint."}}
	}
	results := make([]sarifResult, 0, len(ds))
	for _, d := range ds {
		msg := d.Message
		if d.Hint != "" {
			msg += "\nhint: " + d.Hint
		}
		loc := sarifPhysical{ArtifactLocation: sarifURI(d.File)}
		if d.Pos.Line > 0 {
			r := &sarifRegion{StartLine: d.Pos.Line, StartColumn: d.Pos.Col}
			if d.End.Line > 0 {
				// SARIF's endColumn is the column after the last character.
				r.EndLine, r.EndColumn = d.End.Line, d.End.Col+1
			}
			loc.Region = r
		}
		level := "warning"
		if d.Severity == SeverityError {
			level = "error"
		}
		results = append(results, sarifResult{
			RuleID: d.Code, RuleIndex: index[d.Code], Level: level,
			Message: sarifText{msg}, Locations: []sarifLocation{{PhysicalLocation: loc}},
		})
	}
	log := sarifLog{
		Schema:  "https://json.schemastore.org/sarif-2.1.0.json",
		Version: "2.1.0",
		Runs: []sarifRun{{
			Tool:    sarifToolObj{Driver: sarifDriver{Name: tool.Name, Version: tool.Version, InformationURI: tool.InformationURI, Rules: rules}},
			Results: results,
		}},
	}
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	return enc.Encode(log)
}

// sarifURI turns a file name into an artifact location: a relative URI
// against %SRCROOT% (the repository root for code scanning), or a file URI
// for an absolute path.
func sarifURI(file string) sarifArtifact {
	if file == "" {
		file = "<input>"
	}
	slash := filepath.ToSlash(file)
	if filepath.IsAbs(file) {
		if !strings.HasPrefix(slash, "/") {
			slash = "/" + slash
		}
		return sarifArtifact{URI: "file://" + uriEscape(slash)}
	}
	return sarifArtifact{URI: uriEscape(slash), URIBaseID: "%SRCROOT%"}
}

// uriEscape percent-encodes the characters a URI reference may not hold
// literally, keeping / so that paths stay paths.
func uriEscape(p string) string {
	var b strings.Builder
	for _, c := range []byte(p) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9',
			strings.IndexByte("-._~/!$&'()*+,;=:@", c) >= 0:
			b.WriteByte(c)
		default:
			b.WriteString("%" + strings.ToUpper(string("0123456789abcdef"[c>>4])+string("0123456789abcdef"[c&15])))
		}
	}
	return b.String()
}
