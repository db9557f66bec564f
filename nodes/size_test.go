package nodes

import "testing"

func TestParseByteSize(t *testing.T) {
	tests := []struct {
		in      string
		want    int64
		wantErr bool
	}{
		{"100", 100, false},
		{"0", 0, false},
		{"512KB", 512000, false},
		{"10MiB", 10 << 20, false},
		{"1KiB", 1024, false},
		{"2MB", 2000000, false},
		{"3GB", 3000000000, false},
		{"1GiB", 1 << 30, false},
		{"7B", 7, false},
		{" 4 KiB ", 4096, false},
		{"", 0, true},
		{"KiB", 0, true},
		{"-1", 0, true},
		{"+1", 0, true},
		{"1.5MiB", 0, true},
		{"10 mb", 0, true},
		{"10TB", 0, true},
		{"abc", 0, true},
		{"9223372036854775807GiB", 0, true},
		{"99999999999999999999", 0, true},
	}
	for _, tt := range tests {
		got, err := ParseByteSize(tt.in)
		if (err != nil) != tt.wantErr {
			t.Errorf("ParseByteSize(%q) error = %v, wantErr %v", tt.in, err, tt.wantErr)
			continue
		}
		if got != tt.want {
			t.Errorf("ParseByteSize(%q) = %d, want %d", tt.in, got, tt.want)
		}
	}
}
