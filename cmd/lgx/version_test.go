package main

import (
	"runtime/debug"
	"testing"
	"time"
)

func TestVersionFromBuildInfo(t *testing.T) {
	tests := []struct {
		name    string
		version string
		set     map[string]string
		want    string
	}{
		{"go install from the proxy", "v1.4.0", nil, "v1.4.0"},
		{"pseudo-version with revision", "v1.4.1-0.20260101000000-0123456789ab", map[string]string{"vcs.revision": "0123456789abcdef0123"}, "v1.4.1-0.20260101000000-0123456789ab (rev 0123456789ab)"},
		{"checkout build", "(devel)", map[string]string{"vcs.revision": "fedcba9876543210", "vcs.modified": "true"}, "dev (rev fedcba987654, modified)"},
		{"nothing known", "", nil, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			info := &debug.BuildInfo{Main: debug.Module{Path: "github.com/lgx-run/lgx", Version: tt.version}}
			for k, v := range tt.set {
				info.Settings = append(info.Settings, debug.BuildSetting{Key: k, Value: v})
			}
			if got := versionFromBuildInfo(info); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}

func TestVersionStampWins(t *testing.T) {
	old := version
	defer func() { version = old }()
	version = "9.9.9-ci"
	if got := versionString(); got != "9.9.9-ci" {
		t.Errorf("versionString() = %q with -X main.version set", got)
	}
}

func TestParseAge(t *testing.T) {
	tests := []struct {
		in   string
		want time.Duration
		err  bool
	}{
		{"30d", 30 * 24 * time.Hour, false},
		{"2w", 14 * 24 * time.Hour, false},
		{"36h", 36 * time.Hour, false},
		{"0s", 0, false},
		{"", 0, true},
		{"30", 0, true},
		{"-1d", 0, true},
		{"-1h", 0, true},
		{"xd", 0, true},
		{"99999999999d", 0, true},
	}
	for _, tt := range tests {
		got, err := parseAge(tt.in)
		if (err != nil) != tt.err || got != tt.want {
			t.Errorf("parseAge(%q) = %v, %v; want %v, error %v", tt.in, got, err, tt.want, tt.err)
		}
	}
}
