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
	"time"
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

// startedAfter reports whether process pid started after t, from Linux's
// /proc (the start time in clock ticks since boot, whose time /proc/stat
// gives in seconds); elsewhere, or when /proc cannot tell, false. The
// second of slack covers the boot time's rounding.
func startedAfter(pid int, t time.Time) bool {
	if runtime.GOOS != "linux" {
		return false
	}
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	sys, err := os.ReadFile("/proc/stat")
	if err != nil {
		return false
	}
	start, ok := procStart(stat, sys)
	return ok && start.After(t.Add(time.Second))
}

// userHZ is the unit of /proc's clock ticks, fixed at 100 for user space
// whatever the kernel's own tick.
const userHZ = 100

// procStart returns when a process started from its /proc/PID/stat and
// /proc/stat.
func procStart(stat, sys []byte) (time.Time, bool) {
	// The command name (field 2) is in parentheses and may hold spaces and
	// parentheses itself: the fields after it follow the last ')'.
	i := bytes.LastIndexByte(stat, ')')
	if i < 0 {
		return time.Time{}, false
	}
	fields := strings.Fields(string(stat[i+1:]))
	const startTime = 22 - 3 // field 22; fields[0] is field 3
	if len(fields) <= startTime {
		return time.Time{}, false
	}
	ticks, err := strconv.ParseUint(fields[startTime], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	var boot int64 = -1
	sc := bufio.NewScanner(bytes.NewReader(sys))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "btime "); ok {
			if boot, err = strconv.ParseInt(strings.TrimSpace(v), 10, 64); err != nil {
				return time.Time{}, false
			}
			break
		}
	}
	if boot < 0 {
		return time.Time{}, false
	}
	return time.Unix(boot, 0).Add(time.Duration(ticks) * (time.Second / userHZ)), true
}
