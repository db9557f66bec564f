package wftest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// Summary counts results.
func Summary(results []*Result) (passed, failed int) {
	for _, r := range results {
		if r.Passed() {
			passed++
		} else {
			failed++
		}
	}
	return
}

// WriteText writes a go test style report: a block per failing case (the
// case, then each failure at its expectation's position), then
// "N passed, M failed". verbose adds a line per passing case.
func WriteText(w io.Writer, results []*Result, verbose bool) error {
	for _, r := range results {
		if r.Passed() {
			if verbose {
				fmt.Fprintf(w, "--- PASS: %s: %s (%.2fs)\n", r.File.Path, r.Case.Name, r.Duration.Seconds())
			}
			continue
		}
		fmt.Fprintf(w, "--- FAIL: %s: %s (%.2fs)\n", r.File.Path, r.Case.Name, r.Duration.Seconds())
		for _, f := range r.Failures {
			fmt.Fprintf(w, "    %s: %s\n", f.Pos, indent(f.Msg))
		}
	}
	p, f := Summary(results)
	_, err := fmt.Fprintf(w, "%d passed, %d failed\n", p, f)
	return err
}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n        ") }

// WriteGitHub writes a GitHub Actions error annotation per failure, on the
// test file at the expectation's line, then the summary line.
func WriteGitHub(w io.Writer, results []*Result) error {
	esc := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A")
	escProp := strings.NewReplacer("%", "%25", "\r", "%0D", "\n", "%0A", ":", "%3A", ",", "%2C")
	for _, r := range results {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "::error file=%s,line=%d,col=%d,title=%s::%s\n", escProp.Replace(f.Pos.File), f.Pos.Line, f.Pos.Col,
				escProp.Replace("lgx test: "+r.Case.Name), esc.Replace(f.Msg))
		}
	}
	p, f := Summary(results)
	_, err := fmt.Fprintf(w, "%d passed, %d failed\n", p, f)
	return err
}

// JUnit XML, in the shape CI systems read (the Ant/Surefire schema):
// testsuites > testsuite (one per test file) > testcase (one per case),
// with a failure element per failing case.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Skipped  int         `xml:"skipped,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string        `xml:"name,attr"`
	Classname string        `xml:"classname,attr"`
	Time      string        `xml:"time,attr"`
	Failure   *junitFailure `xml:"failure,omitempty"`
}

type junitFailure struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the results as JUnit XML.
func WriteJUnit(w io.Writer, results []*Result) error {
	out := junitSuites{}
	idx := map[string]int{}
	var total float64
	for _, r := range results {
		i, ok := idx[r.File.Path]
		if !ok {
			i = len(out.Suites)
			idx[r.File.Path] = i
			out.Suites = append(out.Suites, junitSuite{Name: r.File.Path})
		}
		s := &out.Suites[i]
		secs := r.Duration.Seconds()
		total += secs
		tc := junitCase{Name: r.Case.Name, Classname: r.File.Path, Time: fmt.Sprintf("%.3f", secs)}
		if !r.Passed() {
			var lines []string
			for _, f := range r.Failures {
				lines = append(lines, f.Pos.String()+": "+f.Msg)
			}
			tc.Failure = &junitFailure{Message: r.Failures[0].Msg, Type: "expectation", Text: strings.Join(lines, "\n")}
			s.Failures++
			out.Failures++
		}
		s.Tests++
		out.Tests++
		s.Cases = append(s.Cases, tc)
	}
	for i := range out.Suites {
		var t float64
		for _, r := range results {
			if r.File.Path == out.Suites[i].Name {
				t += r.Duration.Seconds()
			}
		}
		out.Suites[i].Time = fmt.Sprintf("%.3f", t)
	}
	out.Time = fmt.Sprintf("%.3f", total)
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
