package spec

import (
	"reflect"
	"testing"
)

func TestParseInterpolation(t *testing.T) {
	tests := []struct {
		in     string
		want   []Segment
		single bool
		err    bool
	}{
		{in: "plain", want: []Segment{{Text: "plain"}}},
		{in: "${{ state.x }}", want: []Segment{{Text: "state.x", IsExpr: true, Offset: 4}}, single: true},
		{in: "  ${{state.x}}\n", want: []Segment{{Text: "  "}, {Text: "state.x", IsExpr: true, Offset: 5}, {Text: "\n", Offset: 14}}},
		// The line break a block scalar ends with is not text; a written
		// space is.
		{in: "${{state.x}}\n", want: []Segment{{Text: "state.x", IsExpr: true, Offset: 3}, {Text: "\n", Offset: 12}}, single: true},
		{in: "${{state.x}}\r\n\n", want: []Segment{{Text: "state.x", IsExpr: true, Offset: 3}, {Text: "\r\n\n", Offset: 12}}, single: true},
		{in: " ${{state.x}}", want: []Segment{{Text: " "}, {Text: "state.x", IsExpr: true, Offset: 4}}},
		{in: "${{state.x}} ", want: []Segment{{Text: "state.x", IsExpr: true, Offset: 3}, {Text: " ", Offset: 12}}},
		{in: "Source: ${{ url }}\n${{ result.body }}", want: []Segment{
			{Text: "Source: "}, {Text: "url", IsExpr: true, Offset: 12}, {Text: "\n", Offset: 18}, {Text: "result.body", IsExpr: true, Offset: 23},
		}},
		{in: `${{ "}}" + x }}`, want: []Segment{{Text: `"}}" + x`, IsExpr: true, Offset: 4}}, single: true},
		{in: "${{ {a: {b: 1}} }}", want: []Segment{{Text: "{a: {b: 1}}", IsExpr: true, Offset: 4}}, single: true},
		{in: "${{ {a: 1}}}", want: []Segment{{Text: "{a: 1}", IsExpr: true, Offset: 4}}, single: true},
		{in: "${{ {a: {b: '}}'}} }} and ${{ x }}", want: []Segment{
			{Text: "{a: {b: '}}'}}", IsExpr: true, Offset: 4}, {Text: " and ", Offset: 21}, {Text: "x", IsExpr: true, Offset: 30},
		}},
		{in: "${{ {a: 1 }}", err: true},
		{in: "${{ x", err: true},
		{in: "${{   }}", err: true},
	}
	for _, tt := range tests {
		got, err := ParseInterpolation(tt.in)
		if (err != nil) != tt.err {
			t.Fatalf("%q: err = %v, want err %v", tt.in, err, tt.err)
		}
		if tt.err {
			continue
		}
		if !reflect.DeepEqual(got.Segments, tt.want) {
			t.Errorf("%q: got %+v, want %+v", tt.in, got.Segments, tt.want)
		}
		if got.Single() != tt.single {
			t.Errorf("%q: Single() = %v", tt.in, got.Single())
		}
	}
}

func TestBareExpression(t *testing.T) {
	for in, want := range map[string]string{
		"state.n > 3":          "state.n > 3",
		"${{ state.n > 3 }}":   "state.n > 3",
		"  ${{state.urls}}   ": "state.urls",
	} {
		got, off, err := BareExpression(in)
		if err != nil || got != want || in[off:off+len(want)] != want {
			t.Errorf("%q: got %q at %d, %v", in, got, off, err)
		}
	}
	if _, _, err := BareExpression("a ${{ b }}"); err == nil {
		t.Error("mixed text and expression: want error")
	}
}

func FuzzParseInterpolation(f *testing.F) {
	for _, s := range []string{"", "${{ a }}", "x${{ 'a}}' }}y", "${{", "}}${{ `"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		in, err := ParseInterpolation(s)
		if err != nil {
			return
		}
		for _, seg := range in.Segments {
			if seg.Offset < 0 || seg.Offset+len(seg.Text) > len(s) || s[seg.Offset:seg.Offset+len(seg.Text)] != seg.Text {
				t.Fatalf("segment %+v does not index into %q", seg, s)
			}
		}
	})
}
