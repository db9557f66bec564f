//go:build lgxcrashtest

package main

import (
	"os"
	"os/signal"
	"runtime/debug"
	"syscall"
)

// A binary built with -tags lgxcrashtest crashes on purpose, so that tests
// can check what the supervisor makes of a real runtime crash. Release
// builds do not contain this file: no workflow or environment can reach it.
//
// LGX_TEST_CRASH names the crash; the child waits for SIGUSR1 (the test
// sends it once the run is under way), then:
//   - stack: a goroutine overflows its stack ("fatal error: stack overflow"),
//   - maps:  two goroutines write one map ("fatal error: concurrent map writes"),
//   - oom:   with the address space capped at 1 GiB, it allocates 16 GiB
//     ("fatal error: out of memory"),
//   - panic: a goroutine panics with LGX_TEST_CRASH_VALUE in the message,
//   - stray: it writes "stray: LGX_TEST_CRASH_VALUE" to fd 2 (as a GODEBUG
//     trace does, past the process's own stderr handling) and goes on.
func init() {
	testCrash = func() {
		kind := os.Getenv("LGX_TEST_CRASH")
		if kind == "" {
			return
		}
		usr1 := make(chan os.Signal, 1)
		signal.Notify(usr1, syscall.SIGUSR1)
		go func() {
			<-usr1
			switch kind {
			case "stack":
				debug.SetMaxStack(1 << 20)
				go recurse(0)
			case "maps":
				m := map[int]int{}
				for g := 0; g < 4; g++ {
					go func() {
						for i := 0; ; i++ {
							m[i%100] = i
						}
					}()
				}
			case "oom":
				// The address space is capped, so the allocation fails
				// the way a runaway template would on a full machine.
				lim := &syscall.Rlimit{Cur: 1 << 30, Max: 1 << 30}
				if err := syscall.Setrlimit(syscall.RLIMIT_AS, lim); err != nil {
					panic(err)
				}
				grow := [][]byte{}
				for i := 0; i < 64; i++ {
					grow = append(grow, make([]byte, 256<<20))
				}
				_ = grow
			case "panic":
				go func() { panic("test crash: " + os.Getenv("LGX_TEST_CRASH_VALUE")) }()
			case "stray":
				_, _ = syscall.Write(2, []byte("stray: "+os.Getenv("LGX_TEST_CRASH_VALUE")+"\n"))
			}
		}()
	}
}

// recurse never returns; its frame is large so the stack fills fast.
func recurse(n int) int {
	var pad [256]byte
	pad[n%256] = byte(n)
	//lint:ignore SA5007 overflowing the stack is the point
	return recurse(n+1) + int(pad[0])
}
