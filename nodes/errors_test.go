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

func TestCassetteKindWinsOverItsWrapper(t *testing.T) {
	miss := &Error{Kind: KindCassette, Err: errors.New("no recording")}
	wrapped := &Error{Kind: KindNetwork, Err: fmt.Errorf("GET u: %w", fmt.Errorf("url: %w", miss))}
	if got := KindOf(wrapped); got != KindCassette {
		t.Errorf("KindOf = %q, want cassette", got)
	}
	if Matches(wrapped, "network") || !Matches(wrapped, "cassette") {
		t.Errorf("Matches: a cassette miss must match only `cassette`")
	}
	if got := KindOf(&Error{Kind: KindNetwork, Err: errors.New("refused")}); got != KindNetwork {
		t.Errorf("KindOf(network) = %q", got)
	}
}
