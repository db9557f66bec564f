package nodes

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
)

func init() { Register(templateType{}) }

// templateType is the `template` type (SPEC §5.3): a Go text/template with
// the hermetic sprig functions, parsed once at compile time.
type templateType struct{}

func (templateType) Name() string { return "template" }

// Pure: templates are hermetic (no environment, clock or randomness).
func (templateType) Pure() bool { return true }

func (templateType) Doc() Doc {
	return Doc{
		Summary: "Renders a Go text/template (with the sprig functions that read no environment, clock or randomness); data root {state, item, index, run}. A missing map key is an error.",
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
	return fm
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
	return t, nil
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

func cleanTemplateErr(err error) error {
	msg := strings.TrimPrefix(err.Error(), "template: template:")
	if msg == err.Error() {
		return err
	}
	msg = strings.Replace(msg, `executing "template" at `, "at ", 1)
	return &templateErr{msg: "line " + msg, err: err}
}

// Run renders the template with the invocation's data root.
func (tt templateType) Run(_ context.Context, inv *Invocation) (any, error) {
	t, _ := inv.Prepared.(*template.Template)
	if t == nil {
		p, err := tt.Prepare(inv.With)
		if err != nil {
			return nil, &Error{Kind: KindTemplate, Err: err}
		}
		t = p.(*template.Template)
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, inv.Data); err != nil {
		return nil, &Error{Kind: KindTemplate, Err: cleanTemplateErr(err)}
	}
	format, _ := inv.With["format"].(string)
	switch format {
	case "", "text":
		return buf.String(), nil
	case "json":
		dec := json.NewDecoder(&buf)
		dec.UseNumber()
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, Errorf(KindTemplate, "template: format json: rendered text is not JSON: %v", err)
		}
		return fromJSONNumbers(v), nil
	}
	return nil, Errorf(KindInput, "template: format must be text or json, got %q", format)
}

// fromJSONNumbers turns json.Number into int (when integral) or float64.
func fromJSONNumbers(v any) any {
	switch x := v.(type) {
	case json.Number:
		if i, err := x.Int64(); err == nil {
			return int(i)
		}
		f, _ := x.Float64()
		return f
	case []any:
		for i, e := range x {
			x[i] = fromJSONNumbers(e)
		}
	case map[string]any:
		for k, e := range x {
			x[k] = fromJSONNumbers(e)
		}
	}
	return v
}
