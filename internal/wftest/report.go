package wftest

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
	"time"
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

// JUnit XML, in the shape CI systems read (Jenkins, GitLab and GitHub
// reporters; testdata/junit.xsd is the schema the tests hold it to):
// testsuites > testsuite (one per test file) > testcase (one per case),
// with a failure element per expectation that did not hold and an error
// element per problem that kept the case from running as written.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Time     string       `xml:"time,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name      string      `xml:"name,attr"`
	Tests     int         `xml:"tests,attr"`
	Failures  int         `xml:"failures,attr"`
	Errors    int         `xml:"errors,attr"`
	Skipped   int         `xml:"skipped,attr"`
	Time      string      `xml:"time,attr"`
	Timestamp string      `xml:"timestamp,attr,omitempty"`
	File      string      `xml:"file,attr"`
	Cases     []junitCase `xml:"testcase"`
	start     time.Time
	secs      float64
}

type junitCase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	File      string         `xml:"file,attr"`
	Line      int            `xml:"line,attr,omitempty"`
	Failures  []junitProblem `xml:"failure"`
	Errors    []junitProblem `xml:"error"`
}

// junitProblem is a failure or an error: the first line of the message as
// the attribute, the whole of it, at its position, as the text.
type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

// WriteJUnit writes the results as JUnit XML. A case's failures and errors
// are each listed in one element (readers show the first of a kind), and
// a case with an error counts as an error, not a failure, as JUnit counts
// a test that threw.
func WriteJUnit(w io.Writer, results []*Result) error {
	out := junitSuites{Name: "lgx test"}
	idx := map[string]int{}
	var total float64
	for _, r := range results {
		i, ok := idx[r.File.Path]
		if !ok {
			i = len(out.Suites)
			idx[r.File.Path] = i
			out.Suites = append(out.Suites, junitSuite{Name: r.File.Path, File: r.File.Path})
		}
		s := &out.Suites[i]
		secs := r.Duration.Seconds()
		total += secs
		s.secs += secs
		if !r.Start.IsZero() && (s.start.IsZero() || r.Start.Before(s.start)) {
			s.start = r.Start
		}
		tc := junitCase{Name: r.Case.Name, Classname: r.File.Path, Time: fmt.Sprintf("%.3f", secs), File: r.File.Path, Line: r.Case.Pos.Line}
		var failed, errored []string
		for _, f := range r.Failures {
			line := f.Pos.String() + ": " + f.Msg
			if f.Error {
				errored = append(errored, line)
			} else {
				failed = append(failed, line)
			}
		}
		if len(errored) > 0 {
			tc.Errors = []junitProblem{{Message: firstMsg(r.Failures, true), Type: "case", Text: strings.Join(errored, "\n")}}
			s.Errors++
			out.Errors++
		}
		if len(failed) > 0 {
			tc.Failures = []junitProblem{{Message: firstMsg(r.Failures, false), Type: "expectation", Text: strings.Join(failed, "\n")}}
			if len(errored) == 0 {
				s.Failures++
				out.Failures++
			}
		}
		s.Tests++
		out.Tests++
		s.Cases = append(s.Cases, tc)
	}
	for i := range out.Suites {
		s := &out.Suites[i]
		s.Time = fmt.Sprintf("%.3f", s.secs)
		if !s.start.IsZero() {
			// xs:dateTime, in UTC to the second: what every reader parses.
			s.Timestamp = s.start.UTC().Format("2006-01-02T15:04:05Z")
		}
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

// firstMsg is the message of the first failure of the kind (errors when
// errs), the one-line summary a reader shows.
func firstMsg(fs []Failure, errs bool) string {
	for _, f := range fs {
		if f.Error == errs {
			msg, _, _ := strings.Cut(f.Msg, "\n")
			return msg
		}
	}
	return ""
}
