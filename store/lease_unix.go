//go:build unix

package store

import (
	"bufio"
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"strings"
	"syscall"
)

// pidAlive reports whether a process with this pid exists (signal 0 checks
// without sending anything; EPERM means it exists but is not ours).
//
// On Linux a process that is dying does not count: a zombie, or one with
// SIGKILL pending. lgx's supervised child (issue #12) is SIGKILLed by the
// kernel when lgx is, and may take a moment to be scheduled and die; once
// dead it waits as a zombie until init reaps it, which in a container whose
// init does not reap is never. Either way it runs nothing any more, and
// its run must show stale at once, as an unsupervised killed lgx's does.
func pidAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	if err != nil && !errors.Is(err, syscall.EPERM) {
		return false
	}
	if runtime.GOOS == "linux" {
		if status, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status"); err == nil {
			return !dying(status)
		}
	}
	return true
}

// dying reports whether /proc/PID/status describes a zombie or a process
// with SIGKILL pending (per thread or for the whole process).
func dying(status []byte) bool {
	const sigkill = 1 << (9 - 1)
	sc := bufio.NewScanner(bytes.NewReader(status))
	for sc.Scan() {
		key, val, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		val = strings.TrimSpace(val)
		switch key {
		case "State":
			if strings.HasPrefix(val, "Z") || strings.HasPrefix(val, "X") {
				return true
			}
		case "SigPnd", "ShdPnd":
			if mask, err := strconv.ParseUint(val, 16, 64); err == nil && mask&sigkill != 0 {
				return true
			}
		}
	}
	return false
}
