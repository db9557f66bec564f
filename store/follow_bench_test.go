package store

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// BenchmarkFollowCheckpoints measures following a run of n steps, each
// appending to a list, read after every step: forward from a cursor, and
// (for comparison) whole with Checkpoints, as a follower without a cursor
// would. ns/read is one read's time, the metric to compare (ns/op holds
// the writes too).
func BenchmarkFollowCheckpoints(b *testing.B) {
	ctx := context.Background()
	for _, n := range []int{100, 400} {
		for _, mode := range []string{"cursor", "whole"} {
			b.Run(fmt.Sprintf("%s/steps=%d", mode, n), func(b *testing.B) {
				for range b.N {
					s, err := OpenSQLite(filepath.Join(b.TempDir(), "lgx.db"))
					if err != nil {
						b.Fatal(err)
					}
					if err := s.CreateRun(ctx, &Run{ID: "R", Workflow: "wf", Status: StatusRunning, StartedAt: time.Now()}); err != nil {
						b.Fatal(err)
					}
					cur := NewCheckpointCursor("R")
					var read time.Duration
					for step := range n {
						cp := &Checkpoint{RunID: "R", Step: step, Changed: map[string]json.RawMessage{"messages": growingList(step + 1)}}
						if err := s.WriteCheckpoint(ctx, cp); err != nil {
							b.Fatal(err)
						}
						t0 := time.Now()
						if mode == "cursor" {
							err = s.ReadCheckpoints(ctx, cur, func(*Checkpoint) error { return nil })
						} else {
							_, err = s.Checkpoints(ctx, "R")
						}
						read += time.Since(t0)
						if err != nil {
							b.Fatal(err)
						}
					}
					s.Close()
					b.ReportMetric(float64(read.Nanoseconds())/float64(n), "ns/read")
				}
			})
		}
	}
}
