//go:build !unix

package store

import (
	"os"
	"time"
)

// pidAlive reports whether a process with this pid exists. Off Unix,
// os.FindProcess opens the process and fails when there is none.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	p, err := os.FindProcess(pid)
	if err != nil {
		return false
	}
	_ = p.Release()
	return true
}

// startedAfter reports whether process pid started after t; off Unix that
// cannot be told, and it reports false.
func startedAfter(int, time.Time) bool { return false }
