package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"path/filepath"
	"strings"
	"testing"
)

// growingList returns the JSON of a list of n ~100-byte messages, as the
// executor writes a `messages` key after n appends.
func growingList(n int) json.RawMessage {
	msgs := make([]map[string]string, n)
	for i := range msgs {
		msgs[i] = map[string]string{"role": "assistant", "content": fmt.Sprintf("%03d %s", i, strings.Repeat("words ", 14))}
	}
	b, _ := json.Marshal(msgs)
	return b
}

// extend replaces list's closing bracket with tail.
func extend(list json.RawMessage, tail string) json.RawMessage {
	return append(bytes.Clone(list[:len(list)-1]), tail...)
}

func openStore(t *testing.T, path string) *SQLite {
	t.Helper()
	s, err := OpenSQLite(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func writeList(t *testing.T, s *SQLite, run string, step, n int) {
	t.Helper()
	cp := &Checkpoint{RunID: run, Step: step, Changed: map[string]json.RawMessage{"messages": growingList(n)}}
	if err := s.WriteCheckpoint(context.Background(), cp); err != nil {
		t.Fatalf("WriteCheckpoint(%d): %v", step, err)
	}
}

// deltaSteps returns the steps of run whose checkpoint holds deltas.
func deltaSteps(t *testing.T, s *SQLite, run string) []int {
	t.Helper()
	var steps []int
	for _, e := range storedCheckpoints(t, s, run) {
		if e.enc.Deltas != nil {
			steps = append(steps, e.step)
		}
	}
	return steps
}

// storedCheckpoints returns the checkpoints of run as stored (encoded),
// in the order written.
func storedCheckpoints(t *testing.T, s *SQLite, run string) []cpEntry {
	t.Helper()
	rows, err := s.db.Query("SELECT cps FROM checkpoint_batches WHERE run_id = ? ORDER BY id", run)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []cpEntry
	for rows.Next() {
		var b []byte
		if err := rows.Scan(&b); err != nil {
			t.Fatal(err)
		}
		if out, err = decodeCPBatch(out, b); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// storedValueBytes is the size of the values (whole and deltas) stored
// for run's checkpoints.
func storedValueBytes(t *testing.T, s *SQLite, run string) int64 {
	t.Helper()
	var n int64
	for _, e := range storedCheckpoints(t, s, run) {
		n += int64(len(e.enc.Changed) + len(e.enc.Deltas))
	}
	return n
}

func checkLists(t *testing.T, s *SQLite, run string, sizes []int) {
	t.Helper()
	cps, err := s.Checkpoints(context.Background(), run)
	if err != nil {
		t.Fatalf("Checkpoints: %v", err)
	}
	if len(cps) != len(sizes) {
		t.Fatalf("Checkpoints = %d, want %d", len(cps), len(sizes))
	}
	for i, cp := range cps {
		if got, want := cp.Changed["messages"], growingList(sizes[i]); !bytes.Equal(got, want) {
			t.Errorf("step %d: messages differ (%d bytes, want %d)", cp.Step, len(got), len(want))
		}
	}
}

func TestCheckpointDeltasStoreOnlyTheTail(t *testing.T) {
	s := openStore(t, filepath.Join(t.TempDir(), "lgx.db"))
	if err := s.CreateRun(context.Background(), &Run{ID: "r", Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for step := range 100 {
		writeList(t, s, "r", step, step+1)
		sizes = append(sizes, step+1)
	}
	if got := len(deltaSteps(t, s, "r")); got != 99 {
		t.Errorf("%d checkpoints hold deltas, want 99 (all but the first)", got)
	}
	stored := storedValueBytes(t, s, "r")
	whole := len(growingList(100))
	if stored > int64(whole*3/2) {
		t.Errorf("stored %d bytes of values for a final list of %d bytes: deltas not effective", stored, whole)
	}
	checkLists(t, s, "r", sizes)
}

func TestCheckpointDeltasAfterReopen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "lgx.db")
	s := openStore(t, path)
	if err := s.CreateRun(context.Background(), &Run{ID: "r", Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	var sizes []int
	for step := range 5 {
		writeList(t, s, "r", step, step+1)
		sizes = append(sizes, step+1)
	}
	s.Close()
	s = openStore(t, path) // as `lgx resume` would: nothing cached
	for step := 5; step < 10; step++ {
		writeList(t, s, "r", step, step+1)
		sizes = append(sizes, step+1)
	}
	if got, want := fmt.Sprint(deltaSteps(t, s, "r")), "[1 2 3 4 6 7 8 9]"; got != want {
		t.Errorf("steps with deltas = %s, want %s (the first write after reopening is whole)", got, want)
	}
	checkLists(t, s, "r", sizes)
}

func TestCheckpointDeltaBaseRewritten(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name    string
		rewrite json.RawMessage // new value of step 1, after step 2 was written
		wantErr bool
	}{
		{"same bytes", growingList(2), false},
		{"same prefix, other tail", extend(growingList(2), `,{"x":1}]`), false},
		{"different bytes", json.RawMessage(`["something else entirely, long enough to matter"]`), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := openStore(t, filepath.Join(t.TempDir(), "lgx.db"))
			if err := s.CreateRun(ctx, &Run{ID: "r", Status: StatusRunning}); err != nil {
				t.Fatal(err)
			}
			for step := range 3 {
				writeList(t, s, "r", step, step+1)
			}
			cp := &Checkpoint{RunID: "r", Step: 1, Changed: map[string]json.RawMessage{"messages": tc.rewrite}}
			if err := s.WriteCheckpoint(ctx, cp); err != nil {
				t.Fatal(err)
			}
			cps, err := s.Checkpoints(ctx, "r")
			if tc.wantErr {
				if !errors.Is(err, errBadDelta) {
					t.Fatalf("Checkpoints = %v, want an error wrapping errBadDelta, never a wrong value", err)
				}
				t.Logf("error: %v", err)
				return
			}
			if err != nil {
				t.Fatalf("Checkpoints: %v", err)
			}
			if !bytes.Equal(cps[1].Changed["messages"], tc.rewrite) || !bytes.Equal(cps[2].Changed["messages"], growingList(3)) {
				t.Errorf("values after rewriting step 1 are wrong")
			}
		})
	}
}

func TestCommonPrefix(t *testing.T) {
	long := strings.Repeat("abcdefgh", 200) // 1600 bytes: several blocks
	tests := []struct {
		a, b string
		want int
	}{
		{"", "", 0},
		{"abc", "", 0},
		{"abc", "abd", 2},
		{"abc", "abc", 3},
		{"abc", "abcdef", 3},
		{long, long, len(long)},
		{long, long + "x", len(long)},
		{long[:1000] + "X" + long[1001:], long, 1000},
		{long[:512] + "X", long, 512},
		{long[:511] + "X", long, 511},
	}
	for _, tc := range tests {
		if got := commonPrefix([]byte(tc.a), []byte(tc.b)); got != tc.want {
			t.Errorf("commonPrefix(%d bytes, %d bytes) = %d, want %d", len(tc.a), len(tc.b), got, tc.want)
		}
		if got := commonPrefix([]byte(tc.b), []byte(tc.a)); got != tc.want {
			t.Errorf("commonPrefix(%d bytes, %d bytes) reversed = %d, want %d", len(tc.b), len(tc.a), got, tc.want)
		}
	}
}

func TestDecodeDeltasRejectsDamage(t *testing.T) {
	rec := appendDelta(nil, delta{key: "messages", baseStep: 3, prefix: 40, sum: 7, tail: []byte(`,"x"]`)})
	ds, err := decodeDeltas(rec)
	if err != nil || len(ds) != 1 || ds[0].key != "messages" || ds[0].baseStep != 3 || ds[0].prefix != 40 ||
		ds[0].sum != 7 || string(ds[0].tail) != `,"x"]` {
		t.Fatalf("round trip = %+v, %v", ds, err)
	}
	for n := 1; n < len(rec); n++ {
		if _, err := decodeDeltas(rec[:n]); !errors.Is(err, errBadDelta) {
			t.Errorf("truncated to %d bytes: err = %v, want errBadDelta", n, err)
		}
	}
}

func FuzzDecodeDeltas(f *testing.F) {
	f.Add(appendDelta(nil, delta{key: "k", baseStep: -1, prefix: 3, sum: 1, tail: []byte("abc")}))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Fuzz(func(t *testing.T, b []byte) {
		ds, err := decodeDeltas(b)
		if err != nil {
			return
		}
		var again []byte
		for _, d := range ds {
			again = appendDelta(again, d)
		}
		if _, err := decodeDeltas(again); err != nil {
			t.Fatalf("re-encoded deltas do not decode: %v", err)
		}
	})
}

// TestLargeValueGrowthStoresTheTail grows a string and a list past
// bigCached, 256 KiB a step: each checkpoint stores about what the step
// added, although the delta cache keeps only checksums of large values,
// and every step reads back byte for byte.
func TestLargeValueGrowthStoresTheTail(t *testing.T) {
	const steps, chunk = 12, 256 << 10
	piece := strings.Repeat("0123456789abcdef", chunk/16)
	s := openStore(t, filepath.Join(t.TempDir(), "lgx.db"))
	ctx := context.Background()
	if err := s.CreateRun(ctx, &Run{ID: "r", Status: StatusRunning}); err != nil {
		t.Fatal(err)
	}
	var want []map[string]json.RawMessage
	text, list := "", []string{}
	for step := range steps {
		text += piece
		list = append(list, piece)
		str, _ := json.Marshal(text)
		lst, _ := json.Marshal(list)
		cp := &Checkpoint{RunID: "r", Step: step, Changed: map[string]json.RawMessage{"text": str, "list": lst}}
		if err := s.WriteCheckpoint(ctx, cp); err != nil {
			t.Fatal(err)
		}
		want = append(want, cp.Changed)
	}
	for _, c := range s.enc.cache["r"] {
		if c.val != nil {
			t.Errorf("the cache holds a copy of a %d-byte value", len(c.val))
		}
	}
	stored := storedValueBytes(t, s, "r")
	if written := int64(2 * steps * chunk); stored > written*11/10 {
		t.Errorf("stored %d bytes for %d bytes written: not proportional to the writes", stored, written)
	}
	cps, err := s.Checkpoints(ctx, "r")
	if err != nil {
		t.Fatal(err)
	}
	for i, cp := range cps {
		for k, v := range want[i] {
			if !bytes.Equal(cp.Changed[k], v) {
				t.Errorf("step %d key %s: read back %d bytes, want %d", i, k, len(cp.Changed[k]), len(v))
			}
		}
	}
}

func TestSharedPrefixOfSummary(t *testing.T) {
	base := []byte(`"` + strings.Repeat("abcdefgh", 3*summaryBlock/8+100) + `"`) // 3 blocks and some
	n := len(base)
	withByte := func(i int, c byte) []byte {
		b := bytes.Clone(base)
		b[i] = c
		return b
	}
	tests := []struct {
		name string
		v    []byte
		want int
	}{
		{"extended", append(bytes.Clone(base[:n-1]), `xyz"`...), n - 1},
		{"same", base, n - 1},
		{"last byte differs", append(bytes.Clone(base[:n-1]), 'Q'), n - 1},
		{"changed in block 3", withByte(2*summaryBlock+5, 'Z'), 2 * summaryBlock},
		{"changed in block 1", withByte(10, 'Z'), 0},
		{"changed just before the end", withByte(n-2, 'Z'), 3 * summaryBlock},
		{"shorter", base[:summaryBlock+10], summaryBlock},
		{"empty", nil, 0},
	}
	c := newCachedValue(1, base)
	if c.sum == nil || c.val != nil {
		t.Fatalf("a %d-byte value is cached whole", n)
	}
	for _, tc := range tests {
		p, sum := c.sharedPrefix(tc.v)
		if p != tc.want {
			t.Errorf("%s: shared prefix %d, want %d", tc.name, p, tc.want)
		}
		if want := crc32.Checksum(tc.v[:p], castagnoli); sum != want {
			t.Errorf("%s: checksum %08x, want %08x (of the prefix)", tc.name, sum, want)
		}
		// A summarized value never claims more than it shares.
		if cp := commonPrefix(base, tc.v); p > cp {
			t.Errorf("%s: claims %d shared bytes, only %d are", tc.name, p, cp)
		}
	}
	small := newCachedValue(1, base[:100])
	if small.sum != nil || !bytes.Equal(small.val, base[:100]) {
		t.Errorf("a small value is not cached whole")
	}
}
