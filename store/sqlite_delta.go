package store

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/maphash"
	"slices"
)

// Checkpoint deltas keep the SQLite store linear in what was written.
//
// A checkpoint holds the new value of each changed key, and for a list
// that grows by one message per step the new value is the whole list:
// stored as is, 500 steps of 200-byte messages would cost 25 MB. So when a
// key's new value shares a long prefix with its value in the run's
// previous checkpoint that changed it (an append to a list, a key added at
// the end of an object, text that grew), the store keeps only (base step,
// shared prefix length, checksum of that prefix, tail). Checkpoints
// rebuilds the full values while reading in step order, so callers never
// see a delta; the checksum makes a base that was since replaced by
// different bytes an error instead of a wrong value.
//
// The previous values come from a per-run cache filled by this process's
// own WriteCheckpoint calls; after a restart (resume) the first checkpoint
// of each key is stored in full again. The run's first checkpoint holds
// the whole initial state, whose keys given as inputs repeat Run.Inputs:
// such a value, when the runner gave its bytes (Run.InputValues), is a
// delta against the inputs (base step inputStep, the whole value, no
// tail), which readers take from the runs table; 2,000 URLs were 70 KB
// written twice before a run's first request. Rewriting a step drops cached values
// of that step and later, so a delta never points at a replaced value.

// minDeltaPrefix is the shared prefix below which a value is stored whole:
// a delta record costs a few bytes of framing.
const minDeltaPrefix = 32

// cachedValue is the last value this process wrote for a key of a run.
// A small value is kept as is; a large one (at least bigCached bytes) only
// as checksums of its prefixes (see summary), so that the cache does not
// hold a second copy of a large state: 100 steps growing a value to 100 MB
// would otherwise clone 5 GB and keep 100 MB.
type cachedValue struct {
	step int
	val  []byte   // the value, when small
	sum  *summary // its summary, when large
}

// bigCached is the size from which a cached value is summarized.
const bigCached = 64 << 10

// summary describes a large value by the checksums of its prefixes: every
// summaryBlock bytes, and all but its last byte (what an extension keeps:
// a list or an object loses its closing bracket, a string its quote).
// Each checksum is CRC-32C, the one delta records carry, plus a seeded
// 64-bit hash: a value taken for a prefix it is not would be stored wrong,
// so 32 bits are not enough to decide.
type summary struct {
	n      int
	blocks []prefixSum // at summaryBlock, 2*summaryBlock, … < n-1
	end    prefixSum   // of all but the last byte
	// What an extension needs (extend): the first byte (the kind), whether
	// the value is an empty list, and the hasher that summed end.
	first     byte
	emptyList bool
	ph        *prefixHasher
}

type prefixSum struct {
	crc  uint32
	hash uint64
}

const summaryBlock = 64 << 10

// hashSeed seeds the prefix hashes; summaries live only in this process.
var hashSeed = maphash.MakeSeed()

// prefixHasher computes prefixSums of successive prefixes of one value.
type prefixHasher struct {
	crc uint32
	h   maphash.Hash
}

func newPrefixHasher() *prefixHasher {
	ph := &prefixHasher{}
	ph.h.SetSeed(hashSeed)
	return ph
}

// add extends the prefix by b and returns the sums of the new prefix.
func (ph *prefixHasher) add(b []byte) prefixSum {
	ph.crc = crc32.Update(ph.crc, castagnoli, b)
	_, _ = ph.h.Write(b)
	return prefixSum{crc: ph.crc, hash: ph.h.Sum64()}
}

// newCachedValue returns what the cache keeps of v, the value of a key at
// step; v is not retained.
func newCachedValue(step int, v []byte) cachedValue {
	if len(v) < bigCached {
		return cachedValue{step: step, val: bytes.Clone(v)}
	}
	sm := &summary{n: len(v), blocks: make([]prefixSum, 0, (len(v)-1)/summaryBlock)}
	ph := newPrefixHasher()
	at := 0
	for at+summaryBlock < len(v)-1 {
		sm.blocks = append(sm.blocks, ph.add(v[at:at+summaryBlock]))
		at += summaryBlock
	}
	sm.end = ph.add(v[at : len(v)-1])
	sm.first, sm.emptyList, sm.ph = v[0], isEmptyList(v), ph
	return cachedValue{step: step, sum: sm}
}

// extend makes sm the summary of its value with the closing byte replaced
// by suf (extSuffix's result, whose last byte is the new closing byte),
// hashing only suf: the blocks the value now spans are added as the
// hasher passes their ends.
func (sm *summary) extend(suf []byte) {
	add := suf[:len(suf)-1]
	pos := sm.n - 1 // bytes summed so far
	for len(add) > 0 {
		if pos > 0 && pos%summaryBlock == 0 {
			sm.blocks = append(sm.blocks, sm.end) // a block end now before the value's end
		}
		take := min(summaryBlock-pos%summaryBlock, len(add))
		sm.end = sm.ph.add(add[:take])
		add, pos = add[take:], pos+take
	}
	sm.n = pos + 1
	sm.emptyList = sm.emptyList && sm.first == '[' && len(bytes.TrimSpace(suf[:len(suf)-1])) == 0
}

// sharedPrefix returns the length of a prefix v shares with the cached
// value, and the CRC-32C of that prefix. For a summarized value it is the
// longest prefix whose checksums match: all but the value's last byte, or
// a whole number of blocks.
func (c cachedValue) sharedPrefix(v []byte) (int, uint32) {
	if c.sum == nil {
		p := commonPrefix(c.val, v)
		return p, crc32.Checksum(v[:p], castagnoli)
	}
	sm := c.sum
	ph := newPrefixHasher()
	p, crc := 0, uint32(0)
	for _, want := range sm.blocks {
		if p+summaryBlock > len(v) {
			return p, crc
		}
		if ph.add(v[p:p+summaryBlock]) != want {
			return p, crc
		}
		p += summaryBlock
		crc = want.crc
	}
	if sm.n-1 <= len(v) && ph.add(v[p:sm.n-1]) == sm.end {
		return sm.n - 1, sm.end.crc
	}
	return p, crc
}

// delta is one key stored relative to an earlier checkpoint's value.
type delta struct {
	key      string
	baseStep int
	prefix   int    // bytes shared with the base value
	sum      uint32 // CRC-32C of those bytes
	tail     []byte // what follows them
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// commonPrefix returns the length of the longest common prefix of a and b.
// It compares in blocks (bytes.Equal is vectorized), then bytewise within
// the first block that differs: values can be megabytes.
func commonPrefix(a, b []byte) int {
	const block = 512
	n := min(len(a), len(b))
	i := 0
	for i+block <= n && bytes.Equal(a[i:i+block], b[i:i+block]) {
		i += block
	}
	for i < n && a[i] == b[i] {
		i++
	}
	return i
}

// appendDelta appends d's binary record: uvarint key length, key, varint
// base step, uvarint prefix length, 4-byte checksum, uvarint tail length,
// tail. Binary, because a tail may start inside a UTF-8 sequence.
func appendDelta(b []byte, d delta) []byte {
	b = binary.AppendUvarint(b, uint64(len(d.key)))
	b = append(b, d.key...)
	b = binary.AppendVarint(b, int64(d.baseStep))
	b = binary.AppendUvarint(b, uint64(d.prefix))
	b = binary.LittleEndian.AppendUint32(b, d.sum)
	b = binary.AppendUvarint(b, uint64(len(d.tail)))
	return append(b, d.tail...)
}

// errBadDelta reports a checkpoint delta that cannot be resolved: the
// record is malformed or its base value was replaced by other bytes.
var errBadDelta = errors.New("damaged checkpoint delta")

// decodeDeltas parses the records appendDelta wrote.
func decodeDeltas(b []byte) ([]delta, error) {
	var out []delta
	r := bytes.NewReader(b)
	readBytes := func() ([]byte, error) {
		n, err := binary.ReadUvarint(r)
		if err != nil || n > uint64(r.Len()) {
			return nil, errBadDelta
		}
		p := make([]byte, n)
		_, _ = r.Read(p) // n <= r.Len(): reads fully
		return p, nil
	}
	for r.Len() > 0 {
		key, err := readBytes()
		if err != nil {
			return nil, err
		}
		base, err := binary.ReadVarint(r)
		if err != nil {
			return nil, errBadDelta
		}
		prefix, err := binary.ReadUvarint(r)
		if err != nil || prefix > 1<<40 {
			return nil, errBadDelta
		}
		var sum [4]byte
		if n, _ := r.Read(sum[:]); n != 4 {
			return nil, errBadDelta
		}
		tail, err := readBytes()
		if err != nil {
			return nil, err
		}
		out = append(out, delta{key: string(key), baseStep: int(base), prefix: int(prefix),
			sum: binary.LittleEndian.Uint32(sum[:]), tail: tail})
	}
	return out, nil
}

// splitChanged decides, for each changed key of a checkpoint at step, to
// store it whole or as a delta against cache, and returns the keys stored
// whole as one JSON object (nil when changed is nil; see encodeChanged)
// and the deltas; sc.keys is left holding changed's keys, sorted. Values are trimmed of surrounding whitespace, as the
// JSON column would. One pass in key order, building the object as it
// goes: this runs for every durable step.
func splitChanged(changed map[string]json.RawMessage, step int, cache map[string]cachedValue, inputs map[string][]byte, sc *encScratch) ([]byte, []byte) {
	clear(sc.keys) // the scratch holds no keys of an earlier checkpoint
	if changed == nil {
		sc.keys = sc.keys[:0]
		return nil, nil
	}
	keys := slices.Grow(sc.keys[:0], len(changed))
	size := 2
	for k, v := range changed {
		keys = append(keys, k)
		size += len(k) + len(v) + 4
	}
	slices.Sort(keys) // the object's keys and the deltas are in key order
	full := slices.Grow(sc.full[:0], size)
	full = append(full, '{')
	var deltas []byte
	for _, k := range keys {
		raw := changed[k]
		v := bytes.TrimSpace(raw)
		if len(raw) >= minDeltaPrefix { // else too short to be stored as a delta
			c, cached := cache[k]
			if cached && c.step < step {
				if p, sum := c.sharedPrefix(v); p >= minDeltaPrefix {
					if deltas == nil {
						deltas = sc.deltas[:0]
					}
					deltas = appendDelta(deltas, delta{key: k, baseStep: c.step, prefix: p, sum: sum, tail: v[p:]})
					continue
				}
			}
			if in, ok := inputs[k]; ok && !cached && bytes.Equal(in, v) {
				// The run's first value of the key is its input: the
				// inputs the run's record holds are its base (the same
				// bytes, given by the runner: compared in O(1)).
				if deltas == nil {
					deltas = sc.deltas[:0]
				}
				deltas = appendDelta(deltas, delta{key: k, baseStep: inputStep, prefix: len(v), sum: crc32.Checksum(v, castagnoli)})
				continue
			}
		}
		full = appendKeyValue(full, k, v)
	}
	sc.keys, sc.full = keys, full // the keys, sorted, for the cache's update
	return append(full, '}'), deltas
}

// inputStep is the base step of a delta against the run's inputs: its
// base is the value of the key's name in Run.Inputs (schema version 10).
const inputStep = -1

// inputsMatch reports whether values, by key, are exactly what the JSON
// object inputs holds, in its order and nothing else: the object
// json.Marshal gives for them (keys sorted and encoded as it encodes
// strings, no space).
func inputsMatch(inputs []byte, values map[string]json.RawMessage) bool {
	keys := sortedKeys(values)
	b := inputs
	if len(b) == 0 || b[0] != '{' {
		return false
	}
	b = b[1:]
	for i, k := range keys {
		if i > 0 {
			if len(b) == 0 || b[0] != ',' {
				return false
			}
			b = b[1:]
		}
		kb, err := json.Marshal(k)
		if err != nil || !bytes.HasPrefix(b, kb) || len(b) <= len(kb) || b[len(kb)] != ':' {
			return false
		}
		b = b[len(kb)+1:]
		v := values[k]
		if !bytes.HasPrefix(b, v) {
			return false
		}
		b = b[len(v):]
	}
	return string(b) == "}"
}

// rebuilder turns a run's checkpoints, read in step order, back into full
// values.
type rebuilder struct {
	last map[string]cachedValue
	// inputs returns the run's inputs (Run.Inputs), the base of deltas
	// at inputStep; read once, when the first such delta is met.
	inputs    func() ([]byte, error)
	inputVals map[string]json.RawMessage
	// inPlace builds a value from its base in the base's buffer: only for
	// a reader that keeps the latest value of each key (CheckpointMerge),
	// never one that returns every step's.
	inPlace bool
}

// apply resolves deltas of the checkpoint at step into changed, then
// remembers every value of the checkpoint as the latest of its key.
func (rb *rebuilder) apply(step int, changed map[string]json.RawMessage, raw []byte) (map[string]json.RawMessage, error) {
	if rb.last == nil {
		rb.last = make(map[string]cachedValue)
	}
	ds, err := decodeDeltas(raw)
	if err != nil {
		return nil, err
	}
	if len(ds) > 0 && changed == nil {
		changed = make(map[string]json.RawMessage, len(ds))
	}
	for _, d := range ds {
		// The latest earlier value of the key is the base; if that step was
		// rewritten, the checksum still proves the shared bytes are the same.
		base, ok := rb.last[d.key]
		if d.baseStep == inputStep {
			v, err := rb.input(d.key)
			if err != nil {
				return nil, err
			}
			// Capped: a value built in place on it must not write
			// into the inputs read.
			base, ok = cachedValue{step: inputStep, val: v[:len(v):len(v)]}, v != nil
		}
		if !ok || d.prefix > len(base.val) || crc32.Checksum(base.val[:d.prefix], castagnoli) != d.sum {
			if d.baseStep == inputStep {
				return nil, fmt.Errorf("key %q: the run's input it is stored as is missing or differs: %w", d.key, errBadDelta)
			}
			return nil, fmt.Errorf("key %q: its value at step %d, which this step extends, is missing or was replaced: %w",
				d.key, d.baseStep, errBadDelta)
		}
		if rb.inPlace {
			v := base.val[:d.prefix]
			if n := d.prefix + len(d.tail); n > cap(v) {
				// Doubling: append's 1.25 for large slices would copy
				// a value grown step by step five times over.
				v = append(make([]byte, 0, max(2*cap(v), n)), v...)
			}
			changed[d.key] = append(v, d.tail...)
			continue
		}
		v := make([]byte, 0, d.prefix+len(d.tail))
		v = append(v, base.val[:d.prefix]...)
		changed[d.key] = append(v, d.tail...)
	}
	for k, v := range changed {
		rb.last[k] = cachedValue{step: step, val: v}
	}
	return changed, nil
}

// input returns the value of key k in the run's inputs, nil when they
// hold none or the reader cannot give them.
func (rb *rebuilder) input(k string) ([]byte, error) {
	if rb.inputVals == nil {
		if rb.inputs == nil {
			return nil, nil
		}
		b, err := rb.inputs()
		if err != nil {
			return nil, fmt.Errorf("the run's inputs, the base of key %q: %w", k, err)
		}
		rb.inputVals = map[string]json.RawMessage{}
		if err := json.Unmarshal(b, &rb.inputVals); err != nil {
			return nil, fmt.Errorf("the run's inputs, the base of key %q: %w", k, errBadDelta)
		}
	}
	return rb.inputVals[k], nil
}
