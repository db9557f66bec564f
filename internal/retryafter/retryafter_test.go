package retryafter

import (
	"math"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	now := time.Date(2026, 11, 26, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name   string
		in     string
		want   time.Duration
		wantOK bool
	}{
		{"seconds", "120", 120 * time.Second, true},
		{"zero", "0", 0, true},
		{"blanks", "  7 ", 7 * time.Second, true},
		{"imf date", "Thu, 26 Nov 2026 12:00:30 GMT", 30 * time.Second, true},
		{"rfc850 date", "Thursday, 26-Nov-26 12:01:00 GMT", time.Minute, true},
		{"asctime date", "Thu Nov 26 12:00:05 2026", 5 * time.Second, true},
		{"past date", "Thu, 26 Nov 2026 11:00:00 GMT", 0, true},
		{"huge seconds saturate", "99999999999999999999999", time.Duration(math.MaxInt64), true},
		{"large seconds saturate", "9223372036854775807", time.Duration(math.MaxInt64), true},
		{"empty", "", 0, false},
		{"negative", "-5", 0, false},
		{"fraction", "1.5", 0, false},
		{"garbage", "soon", 0, false},
		{"digits then text", "10s", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := Parse(tt.in, now)
			if ok != tt.wantOK || got != tt.want {
				t.Errorf("Parse(%q) = %v, %v; want %v, %v", tt.in, got, ok, tt.want, tt.wantOK)
			}
		})
	}
}
