package wftest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// xmllint validates doc against testdata/junit.xsd and returns its
// complaints ("" when valid). The test skips when xmllint is missing:
// .ci/run installs it (Debian package libxml2-utils).
func xmllint(t *testing.T, doc []byte) string {
	t.Helper()
	bin, err := exec.LookPath("xmllint")
	if err != nil {
		t.Skip("xmllint is not on PATH (apt-get install libxml2-utils); the JUnit report is not validated against its schema")
	}
	p := filepath.Join(t.TempDir(), "report.xml")
	if err := os.WriteFile(p, doc, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(bin, "--noout", "--nonet", "--schema", filepath.Join("testdata", "junit.xsd"), p).CombinedOutput()
	if err != nil {
		if _, ok := err.(*exec.ExitError); !ok {
			t.Fatalf("xmllint: %v", err)
		}
		return string(out)
	}
	return ""
}

// TestJUnitValidates runs a test file with a passing case, a failing case
// and a case that cannot run (its cassette is missing) and validates the
// JUnit report against the schema CI systems read.
func TestJUnitValidates(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "flow.yaml", `lgx: 1
name: flow
state:
  name:     {type: string, default: world}
  greeting: {type: string}
nodes:
  hello:
    type: set
    output:
      greeting: "Hello, ${{ state.name }}"
edges:
  - {from: START, to: hello}
  - {from: hello, to: END}
`)
	tf := writeFile(t, dir, "flow.test.yaml", `workflow: flow.yaml
cases:
  - name: greets <the> "world" & more
    expect:
      state: {greeting: "Hello, world"}
  - name: "fails\ton two lines"
    inputs: {name: lgx}
    expect:
      state: {greeting: "Hello,\nworld ]]> <x/>"}
      path: [hello, hello]
  - name: cassette missing
    cassette: nowhere.cassette.yaml
`)
	files, graphs, err := Load([]string{tf})
	if err != nil {
		t.Fatal(err)
	}
	results := Run(context.Background(), files, graphs, Options{})
	if len(results) != 3 || !results[0].Passed() || results[1].Passed() || results[2].Passed() {
		t.Fatalf("results: %+v %+v %+v", results[0].Failures, results[1].Failures, results[2].Failures)
	}
	var buf bytes.Buffer
	if err := WriteJUnit(&buf, results); err != nil {
		t.Fatal(err)
	}
	if msg := xmllint(t, buf.Bytes()); msg != "" {
		t.Fatalf("the report is not valid JUnit XML:\n%s\n%s", msg, buf.String())
	}
	for _, want := range []string{
		`<testsuites name="lgx test" tests="3" failures="1" errors="1" time="`,
		`errors="1" skipped="0" time="`,
		`<failure message="state.greeting: expected &#34;Hello,\nworld ]]&gt; &lt;x/&gt;&#34;, got &#34;Hello, lgx&#34;" type="expectation">`,
		`path: expected [hello, hello], got [hello]</failure>`,
		`<error message="cassette `,
		`line="11"`,
	} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("the report lacks %s:\n%s", want, buf.String())
		}
	}
}

// TestJUnitSchemaIsStrict makes sure the schema the report is held to
// rejects what CI readers do not read, so that validating is a check.
func TestJUnitSchemaIsStrict(t *testing.T) {
	const ok = `<testsuites tests="1"><testsuite name="s" tests="1" time="0.5" timestamp="2026-01-02T03:04:05Z">` +
		`<testcase name="c" classname="s" time="0.5" file="s.yaml" line="3"><failure message="m" type="t">x</failure></testcase>` +
		`</testsuite></testsuites>`
	tests := []struct{ name, doc string }{
		{"time with a unit", strings.Replace(ok, `time="0.5" file`, `time="0.5s" file`, 1)},
		{"negative count", strings.Replace(ok, `tests="1"><testsuite`, `tests="-1"><testsuite`, 1)},
		{"fractional count", strings.Replace(ok, `name="s" tests="1"`, `name="s" tests="1.5"`, 1)},
		{"testcase without a name", strings.Replace(ok, `<testcase name="c" `, `<testcase `, 1)},
		{"testsuite without tests", strings.Replace(ok, `name="s" tests="1" `, `name="s" `, 1)},
		{"failure outside a testcase", strings.Replace(ok, `</testcase>`, `</testcase><failure/>`, 1)},
		{"testcase at the root", `<testcase name="c" classname="s"/>`},
		{"unknown attribute", strings.Replace(ok, `<testcase name="c"`, `<testcase status="failed" name="c"`, 1)},
		{"skipped and failure", strings.Replace(ok, `<failure`, `<skipped/><failure`, 1)},
		{"system-out before the result", strings.Replace(ok, `<failure`, `<system-out>o</system-out><failure`, 1)},
		{"bad timestamp", strings.Replace(ok, `2026-01-02T03:04:05Z`, `yesterday`, 1)},
		{"line zero", strings.Replace(ok, `line="3"`, `line="0"`, 1)},
	}
	if msg := xmllint(t, []byte(ok)); msg != "" {
		t.Fatalf("the valid document is rejected:\n%s", msg)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if xmllint(t, []byte(tt.doc)) == "" {
				t.Errorf("the schema accepts %s", tt.doc)
			}
		})
	}
}
