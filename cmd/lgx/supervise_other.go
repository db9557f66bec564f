//go:build !linux

package main

// supervise runs every command in this process where lgx has no
// supervisor (it needs Linux's PR_SET_PDEATHSIG and /proc/self/exe; see
// docs/decisions.md): a runtime crash then exits 2 with the Go dump.
func supervise([]string) (int, bool) { return 0, false }
