package spec

import (
	"strings"
	"testing"
)

func TestConfigMaxValueBytes(t *testing.T) {
	tests := []struct {
		value string
		want  int64
		err   string
	}{
		{"1000", 1000, ""},
		{"512KB", 512000, ""},
		{"16MiB", 16 << 20, ""},
		{`"2 KiB"`, 2048, ""},
		{"0", 0, "at least 1 byte"},
		{"-5", 0, "non-negative integer"},
		{"lots", 0, "non-negative integer"},
		{"true", 0, "byte size"},
		{"[1]", 0, "must be a byte size, not"},
	}
	for _, tt := range tests {
		src := "lgx: 1\nname: m\nconfig: {max_value_bytes: " + tt.value + "}\nnodes: {a: {type: set}}\nedges: [{from: START, to: a}]\n"
		w, ds := Load("m.yaml", []byte(src))
		if tt.err == "" {
			if len(ds) != 0 || w.Config.MaxValueBytes != tt.want {
				t.Errorf("%s: got %d, %v; want %d", tt.value, w.Config.MaxValueBytes, ds, tt.want)
			}
			continue
		}
		if !strings.Contains(ds.String(), tt.err) || !strings.Contains(ds.String(), "m.yaml:3:") {
			t.Errorf("%s: diagnostics %q, want %q at line 3", tt.value, ds.String(), tt.err)
		}
	}
	w, _ := Load("m.yaml", []byte("lgx: 1\nname: m\nnodes: {a: {type: set}}\nedges: [{from: START, to: a}]\n"))
	if w.Config.MaxValueBytes != 0 {
		t.Errorf("default = %d, want 0 (the runner's default)", w.Config.MaxValueBytes)
	}
}
