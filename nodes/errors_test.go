package nodes

import (
	"errors"
	"fmt"
	"testing"
)

func TestMatches(t *testing.T) {
	status := func(code int) error {
		return fmt.Errorf("wrapped: %w", &Error{Kind: KindStatus, Status: code, Err: errors.New("x")})
	}
	tests := []struct {
		err  error
		on   string
		want bool
	}{
		{status(429), "429", true},
		{status(429), "4xx", true},
		{status(429), "5xx", false},
		{status(503), "5xx", true},
		{status(404), "status", true},
		{status(404), "429", false},
		{Errorf(KindTimeout, "slow"), "timeout", true},
		{Errorf(KindTimeout, "slow"), "network", false},
		{errors.New("plain"), "network", false},
	}
	for _, tt := range tests {
		if got := Matches(tt.err, tt.on); got != tt.want {
			t.Errorf("Matches(%v, %q) = %v, want %v", tt.err, tt.on, got, tt.want)
		}
	}
}
