package nodes

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"sync"
	"text/template"

	"github.com/Masterminds/sprig/v3"

	"github.com/lgx-run/lgx/internal/value"
)

func init() { Register(templateType{}) }

// templateType is the `template` type (SPEC §5.3): a Go text/template with
// the hermetic sprig functions, parsed once at compile time.
type templateType struct{}

func (templateType) Name() string { return "template" }

// Pure: templates are hermetic (no environment, clock or randomness).
// Capabilities: rendering depends only on the data root.
func (templateType) Capabilities() Capabilities { return Capabilities{Pure: true, ReadsData: true} }

func (templateType) Doc() Doc {
	return Doc{
		Summary: "Renders a Go text/template (with the sprig functions that read no environment, clock or randomness); data root {state, item, index, run}, and in a tool {state, args, run}. A missing map key is an error.",
		With: []Field{
			{Name: "template", Type: "string", Required: true, Static: true, Doc: "The template text; `${{ }}` in it is not an expression."},
			{Name: "format", Type: "string", Enum: []string{"text", "json"}, Default: "text", Doc: "json parses the rendered text as JSON."},
		},
		Result: []Field{{Name: "(value)", Type: "any", Doc: "The rendered text, or the parsed value for format json."}},
	}
}

// nonHermetic are sprig functions that read the environment, the clock,
// randomness or the network, beyond sprig's own hermetic list.
var nonHermetic = []string{
	"ago", "toDate", "mustToDate", "randInt", "shuffle", "bcrypt", "htpasswd", "encryptAES",
	"genPrivateKey", "genCA", "genCAWithKey", "genSelfSignedCert", "genSelfSignedCertWithKey",
	"genSignedCert", "genSignedCertWithKey", "buildCustomCert",
}

// TemplateFuncs returns the function map of templates: sprig's hermetic
// functions minus every other function that is not repeatable.
func TemplateFuncs() template.FuncMap {
	fm := sprig.HermeticTxtFuncMap()
	for _, n := range nonHermetic {
		delete(fm, n)
	}
	fm["substr"] = substr
	return fm
}

// substr is sprig's substr(start, end, s) with its indexes clamped to s:
// sprig's slices s[start:end] as given, and a start past the end panics,
// which a template reports as a Go runtime error. A start past the end
// (or past s) gives "", a negative start or an end past s means s's start
// or end, as sprig does for them.
func substr(start, end int, s string) string {
	if start < 0 {
		start = 0
	}
	if end < 0 || end > len(s) {
		end = len(s)
	}
	if start >= end {
		return ""
	}
	return s[start:end]
}

// preparedTemplate is a parsed template and a pool of clones whose
// functions are bound to a Budget: text/template fixes functions at parse
// time, so bounding one execution needs a clone per concurrent execution.
type preparedTemplate struct {
	base *template.Template
	pool sync.Pool // of *boundTemplate
}

// boundTemplate is a clone of a template whose functions count against b.
type boundTemplate struct {
	t     *template.Template
	b     Budget
	owned ownedMaps // the dicts this execution built (template_owned.go)
}

func (p *preparedTemplate) get() (*boundTemplate, error) {
	if bt, ok := p.pool.Get().(*boundTemplate); ok {
		return bt, nil
	}
	bt := &boundTemplate{owned: ownedMaps{}}
	t, err := p.base.Clone()
	if err != nil {
		return nil, err
	}
	bt.t = t.Funcs(boundedFuncs(&bt.b, bt.owned))
	return bt, nil
}

// Prepare parses the template.
func (templateType) Prepare(static map[string]any) (any, error) {
	text, ok := static["template"].(string)
	if !ok {
		return nil, fmt.Errorf("template: with.template must be a string")
	}
	t, err := template.New("template").Funcs(TemplateFuncs()).Option("missingkey=error").Parse(text)
	if err != nil {
		return nil, cleanTemplateErr(err)
	}
	return &preparedTemplate{base: t}, nil
}

// templateErr is a text/template error reworded for people: Go's
// `template: template:1:9: executing "template" at <.x>: …` becomes
// `line 1:9: at <.x>: …` (the template has no name worth repeating).
type templateErr struct {
	msg string
	err error
}

func (e *templateErr) Error() string { return e.msg }
func (e *templateErr) Unwrap() error { return e.err }

var invalidValue = regexp.MustCompile(`invalid value; expected (\w+)`)

func cleanTemplateErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: template:")
	if msg == err.Error() {
		return err
	}
	msg = strings.Replace(msg, `executing "template" at `, "at ", 1)
	// A nil argument to a function ("invalid value; expected string") is
	// a null in the data: say so in the state types' words.
	msg = invalidValue.ReplaceAllString(msg, "expected $1, got null")
	return &templateErr{msg: "line " + msg, err: err}
}

// Run renders the template with the invocation's data root, under ctx
// and the invocation's size budget (SPEC §9.6): functions and the output
// writer stop the execution once ctx is done or the text or the values it
// builds outgrow config.max_value_bytes.
func (tt templateType) Run(ctx context.Context, inv *Invocation) (any, error) {
	p, _ := inv.Prepared.(*preparedTemplate)
	if p == nil {
		prep, err := tt.Prepare(inv.With)
		if err != nil {
			return nil, &Error{Kind: KindTemplate, Err: err}
		}
		p = prep.(*preparedTemplate)
	}
	bt, err := p.get()
	if err != nil {
		return nil, &Error{Kind: KindTemplate, Err: err}
	}
	bt.b.Reset(ctx, inv.MaxValueBytes, "a value built by the template")
	clear(bt.owned)
	out := &limitWriter{b: &bt.b, limit: bt.b.Limit()}
	err = bt.t.Execute(out, inv.Data)
	bt.b.Release()
	p.pool.Put(bt)
	if err != nil {
		return nil, templateRunErr(err, out)
	}
	format, _ := inv.With["format"].(string)
	switch format {
	case "", "text":
		return out.buf.String(), nil
	case "json":
		v, err := value.DecodeJSON(out.buf.Bytes())
		if err != nil {
			return nil, Errorf(KindTemplate, "template: format json: rendered text is not JSON: %v", err)
		}
		return v, nil
	}
	return nil, Errorf(KindInput, "template: format must be text or json, got %q", format)
}

// templateRunErr classifies an execution error: a limit or a deadline
// reached inside the template keeps its kind (the runner names a timeout
// itself), anything else is a template error.
func templateRunErr(err error, out *limitWriter) error {
	if out.err != nil {
		return out.err
	}
	var ne *Error
	if errors.As(err, &ne) && ne.Kind == KindLimit {
		return &Error{Kind: KindLimit, Err: &FieldError{Field: "template", Err: fmt.Errorf("template: %w", ne.Err)}}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return fmt.Errorf("template: stopped: %w", err)
	}
	return &Error{Kind: KindTemplate, Err: &FieldError{Field: "template", Err: cleanTemplateErr(err)}}
}

// limitWriter collects rendered text up to limit bytes, checking the
// budget's context as text arrives.
type limitWriter struct {
	buf   bytes.Buffer
	b     *Budget
	limit int64
	err   error // the first refusal, reported instead of text/template's wrapping
}

func (w *limitWriter) Write(p []byte) (int, error) {
	if w.err != nil {
		return 0, w.err
	}
	if int64(w.buf.Len())+int64(len(p)) > w.limit {
		w.err = &Error{Kind: KindLimit, Err: &FieldError{Field: "template", Err: fmt.Errorf("template: %w", &LimitError{What: "rendered text", Limit: w.limit})}}
		return 0, w.err
	}
	if err := w.b.Tick(); err != nil {
		w.err = fmt.Errorf("template: stopped: %w", err)
		return 0, w.err
	}
	return w.buf.Write(p)
}
