package spec

import "testing"

func TestAddRanges(t *testing.T) {
	src := []byte("lgx: 1\nname: Bad-Name\nstate:\n  x: {type: 'str''in'}\n  y: {type: \"a\\\"b\"}\nnodes:\n  - name: a\n    with: |\n      text\n")
	tests := []struct {
		name string
		pos  Pos
		want Pos
	}{
		{"plain value", Pos{2, 7}, Pos{2, 14}},
		{"plain key", Pos{2, 1}, Pos{2, 4}},
		{"single-quoted with escaped quote", Pos{4, 13}, Pos{4, 21}},
		{"double-quoted with escape", Pos{5, 13}, Pos{5, 18}},
		{"inside a scalar", Pos{2, 9}, Pos{}},
		{"block scalar", Pos{8, 11}, Pos{}},
		{"no position", Pos{}, Pos{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ds := Diagnostics{{File: "f.yaml", Pos: tt.pos}}
			ds.AddRanges(map[string][]byte{"f.yaml": src})
			if ds[0].End != tt.want {
				t.Errorf("End = %+v, want %+v", ds[0].End, tt.want)
			}
		})
	}
}

func TestAddRangesBadYAML(t *testing.T) {
	ds := Diagnostics{{File: "f.yaml", Pos: Pos{1, 1}}}
	ds.AddRanges(map[string][]byte{"f.yaml": []byte("a: [\n")})
	if ds[0].End != (Pos{}) {
		t.Errorf("End = %+v on unparsable YAML", ds[0].End)
	}
}
