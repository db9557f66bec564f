package store_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lgx-run/lgx/store"
	"github.com/lgx-run/lgx/store/storetest"
)

func openTemp(t *testing.T) *store.SQLite {
	t.Helper()
	s, err := store.OpenSQLite(filepath.Join(t.TempDir(), "lgx.db"))
	if err != nil {
		t.Fatalf("OpenSQLite: %v", err)
	}
	return s
}

func TestSQLiteConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store { return openTemp(t) })
}

// message is a ~200-byte chat message, the typical value a step changes.
func message(i int) json.RawMessage {
	return json.RawMessage(fmt.Sprintf(`{"role":"assistant","content":%q}`,
		fmt.Sprintf("step %04d: %s", i, strings.Repeat("lorem ipsum dolor sit amet ", 6))))
}

// TestSQLiteGrowth runs 500 steps that each record an invocation writing a
// ~200-byte message and a checkpoint of the key it changed: the store must
// grow with what was written, not with steps squared, both when the key
// holds the last message and when it holds the whole, growing message list
// (an append reducer), where the checkpoint's new value is every message
// so far (25 MB over 500 steps if stored whole).
func TestSQLiteGrowth(t *testing.T) {
	tests := []struct {
		name  string
		value func(msgs []json.RawMessage) json.RawMessage
	}{
		{"last message", func(msgs []json.RawMessage) json.RawMessage { return msgs[len(msgs)-1] }},
		{"growing message list", messageList},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := context.Background()
			path := filepath.Join(t.TempDir(), "lgx.db")
			s, err := store.OpenSQLite(path)
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			if err := s.CreateRun(ctx, &store.Run{ID: "grow", Status: store.StatusRunning}); err != nil {
				t.Fatal(err)
			}
			const steps = 500
			var (
				written, values int
				msgs            []json.RawMessage
			)
			for i := range steps {
				msg := message(i)
				msgs = append(msgs, msg)
				written += len(msg)
				if err := s.RecordInvocation(ctx, &store.Invocation{RunID: "grow", Step: i, Node: "chat", Index: -1,
					Status: store.InvocationOK, Writes: json.RawMessage(`{"messages":` + string(msg) + `}`), Attempts: 1,
					StartedAt: time.Now(), EndedAt: time.Now()}); err != nil {
					t.Fatal(err)
				}
				v := tc.value(msgs)
				values += len(v)
				if err := s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "grow", Step: i,
					Changed: map[string]json.RawMessage{"messages": v}, Next: []string{"chat"}, At: time.Now()}); err != nil {
					t.Fatal(err)
				}
			}
			open, err := s.DiskSize()
			if err != nil {
				t.Fatal(err)
			}
			data, err := s.DataSize(ctx)
			if err != nil {
				t.Fatal(err)
			}
			cps, err := s.Checkpoints(ctx, "grow")
			if err != nil || len(cps) != steps || !bytes.Equal(cps[steps-1].Changed["messages"], tc.value(msgs)) {
				t.Fatalf("reading back: %d checkpoints, %v; last value intact: %v", len(cps), err,
					err == nil && len(cps) == steps && bytes.Equal(cps[steps-1].Changed["messages"], tc.value(msgs)))
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("%d steps, %d message bytes, checkpoint values totalling %d bytes: %d bytes of data; %d on disk while open (db+WAL), %d after close",
				steps, written, values, data, open, fi.Size())
			if data != fi.Size() {
				t.Errorf("DataSize = %d while open, but the closed file is %d bytes", data, fi.Size())
			}
			const limit = 10 << 20
			if open >= limit || fi.Size() >= limit {
				t.Errorf("store size %d open / %d closed, want < %d", open, fi.Size(), limit)
			}
			// Linear: a few times the messages (once in writes, once in the
			// checkpoints, plus rows and indexes), however large the values.
			if fi.Size() > int64(8*written) {
				t.Errorf("closed store is %d bytes for %d bytes of messages: more than 8x", fi.Size(), written)
			}
		})
	}
}

// messageList encodes msgs as json.Marshal would, in a fresh buffer.
func messageList(msgs []json.RawMessage) json.RawMessage {
	b := []byte{'['}
	for i, m := range msgs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, m...)
	}
	return append(b, ']')
}

func benchStore(b *testing.B) (*store.SQLite, string) {
	path := filepath.Join(b.TempDir(), "lgx.db")
	s, err := store.OpenSQLite(path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	if err := s.CreateRun(context.Background(), &store.Run{ID: "bench", Status: store.StatusRunning}); err != nil {
		b.Fatal(err)
	}
	return s, path
}

// reportSize reports the store's logical growth per operation.
func reportSize(b *testing.B, s *store.SQLite, before int64) {
	after, err := s.DataSize(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(after-before)/float64(b.N), "db-B/op")
}

func BenchmarkSQLiteRecordInvocation(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	writes := json.RawMessage(`{"last":` + string(message(0)) + `}`)
	before, _ := s.DataSize(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.RecordInvocation(ctx, &store.Invocation{RunID: "bench", Step: i / 8, Node: "n", Index: i % 8,
			Status: store.InvocationOK, Writes: writes, Attempts: 1, StartedAt: time.Now(), EndedAt: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportSize(b, s, before)
}

func BenchmarkSQLiteCheckpoint(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	msg := message(0)
	before, _ := s.DataSize(ctx)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; b.Loop(); i++ {
		if err := s.WriteCheckpoint(ctx, &store.Checkpoint{RunID: "bench", Step: i,
			Changed: map[string]json.RawMessage{"last": msg}, Next: []string{"a", "b"}, At: time.Now()}); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	reportSize(b, s, before)
}

// BenchmarkSQLiteRecordInvocations records invocations 64 per call, as the
// runner hands over the items of a parallel step that finished together;
// it reports the cost per invocation.
func BenchmarkSQLiteRecordInvocations(b *testing.B) {
	s, _ := benchStore(b)
	ctx := context.Background()
	writes := json.RawMessage(`{"ok":1}`)
	batch := make([]*store.Invocation, 64)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range batch {
			batch[j] = &store.Invocation{RunID: "bench", Step: i, Node: "n", Index: j,
				Status: store.InvocationOK, Writes: writes, Attempts: 1, StartedAt: time.Now(), EndedAt: time.Now()}
		}
		if err := s.RecordInvocations(ctx, batch); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*len(batch)), "ns/invocation")
}
