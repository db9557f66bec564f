package runner

import (
	"encoding/json"
	"fmt"
	"testing"
)

// TestEncodeJoins: the joins' progress is stored as the bytes json.Marshal
// gave for the map it replaced, so checkpoints written before and after
// read alike.
func TestEncodeJoins(t *testing.T) {
	twelve := make([][]bool, 12)
	for i := range twelve {
		twelve[i] = []bool{i%2 == 0, i%3 == 0}
	}
	tests := []struct {
		name string
		done [][]bool
	}{
		{"no joins", nil},
		{"no joins, empty", [][]bool{}},
		{"one join, nothing done", [][]bool{{false, false}}},
		{"nil and empty sources", [][]bool{nil, {}, {true}}},
		{"more than ten joins: keys in string order", twelve},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := make(map[string][]bool, len(tt.done))
			for i, d := range tt.done {
				m[fmt.Sprint(i)] = d
			}
			want, err := json.Marshal(m)
			if err != nil {
				t.Fatal(err)
			}
			if got := encodeJoins(tt.done); string(got) != string(want) {
				t.Errorf("encodeJoins = %s, want %s", got, want)
			}
		})
	}
}
