package main

import (
	"runtime/debug"
)

// versionString is what `lgx --version` prints: the -X main.version stamp of
// a release build, else the module version and VCS revision Go records in a
// `go install …@version` or `go build` binary, else "dev".
func versionString() string {
	if version != "dev" {
		return version
	}
	info, ok := debug.ReadBuildInfo()
	if !ok {
		return version
	}
	return versionFromBuildInfo(info)
}

// versionFromBuildInfo formats the build info: "v1.2.3" for a module
// version from the proxy, and " (rev abc123def456[, modified])" when the
// binary was built from a checkout.
func versionFromBuildInfo(info *debug.BuildInfo) string {
	v := info.Main.Version
	if v == "" || v == "(devel)" {
		v = "dev"
	}
	var rev string
	modified := false
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			modified = s.Value == "true"
		}
	}
	if rev == "" {
		return v
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if modified {
		rev += ", modified"
	}
	return v + " (rev " + rev + ")"
}
