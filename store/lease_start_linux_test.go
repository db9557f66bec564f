package store

import (
	"os"
	"testing"
	"time"
)

// TestProcStart reads a process's start time from /proc's text, whatever
// its command name holds, and refuses text it cannot read.
func TestProcStart(t *testing.T) {
	sys := []byte("cpu  1 2 3\nintr 5\nbtime 1700000000\nprocesses 9\n")
	// Field 22 (start time) is 12345 ticks: 123.45 s after boot.
	rest := " S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 12345 23 24\n"
	for _, comm := range []string{"(lgx)", "(a b) c)", "(()"} {
		got, ok := procStart([]byte("4242 "+comm+rest), sys)
		want := time.Unix(1700000000, 0).Add(123450 * time.Millisecond)
		if !ok || !got.Equal(want) {
			t.Errorf("comm %s: start %v, %v; want %v", comm, got, ok, want)
		}
	}
	for name, tc := range map[string][2]string{
		"no parenthesis": {"4242 lgx S 1", string(sys)},
		"short":          {"4242 (lgx) S 1 2", string(sys)},
		"no btime":       {"4242 (lgx)" + rest, "cpu 1\n"},
		"bad ticks":      {"4242 (lgx) S 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20 21 x 23\n", string(sys)},
	} {
		if _, ok := procStart([]byte(tc[0]), []byte(tc[1])); ok {
			t.Errorf("%s: read a start time from text without one", name)
		}
	}
}

// TestStartedAfter: this process started after a time before it ran and
// not after one since; a pid with no process tells nothing.
func TestStartedAfter(t *testing.T) {
	if !startedAfter(os.Getpid(), time.Now().Add(-48*time.Hour)) {
		t.Error("this process did not start after two days ago")
	}
	if startedAfter(os.Getpid(), time.Now()) {
		t.Error("this process started after now")
	}
	if startedAfter(1<<30, time.Time{}) {
		t.Error("a pid without a process started after the zero time")
	}
}
