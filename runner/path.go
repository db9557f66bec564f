package runner

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
)

// Invocation paths (SPEC §9.1) name every invocation of a run uniquely and
// identically on every replay and resume:
//
//	STEP/NODE            a node without for_each, in top-level step STEP
//	STEP/NODE[INDEX]     one for_each item
//	PARENT/tool:ID       one tool call of a tools invocation PARENT
//	PARENT/STEP/NODE…    an invocation of a subgraph run by invocation PARENT
//
// Records, events, resume answers and idempotency keys are keyed by them.

// invocationPath is the path of node's invocation (index -1 without
// for_each) in step of a run whose invocations live under prefix ("" for a
// top-level run, "PARENT/" for a subgraph's).
func invocationPath(prefix string, step int, node string, index int) string {
	var b strings.Builder
	b.Grow(len(prefix) + len(node) + 12)
	b.WriteString(prefix)
	b.WriteString(strconv.Itoa(step))
	b.WriteByte('/')
	b.WriteString(node)
	if index >= 0 {
		b.WriteByte('[')
		b.WriteString(strconv.Itoa(index))
		b.WriteByte(']')
	}
	return b.String()
}

// toolCallPath is the path of one tool call of the tools invocation at
// parent. The model's call id names it; a call without a usable id (the
// tools node passes none for an id an earlier call of its list used) is
// named by its position instead ("tool:#2"), as stable on replay as the
// list itself.
func toolCallPath(parent, id string, position int) string {
	if id == "" || strings.ContainsAny(id, "/#") {
		return parent + "/tool:#" + strconv.Itoa(position)
	}
	return parent + "/tool:" + id
}

// maxIdempotencyKey is the longest Idempotency-Key lgx sends: the length
// payment APIs accept (Stripe's limit is 255).
const maxIdempotencyKey = 255

// idempotencyKey derives the Idempotency-Key of the invocation at path:
// "lgx-RUN-PATH", or, when that would exceed 255 characters,
// "lgx-RUN-" and the first 32 hex digits of sha256(PATH). It is the same
// across retries and resumes of one invocation and different for any two
// invocations of a run.
func idempotencyKey(runID, path string) string {
	k := "lgx-" + runID + "-" + path
	if len(k) <= maxIdempotencyKey {
		return k
	}
	sum := sha256.Sum256([]byte(path))
	return "lgx-" + runID + "-" + hex.EncodeToString(sum[:16])
}

// messageID is the id given to a message written without one: derived from
// the writing invocation's path and the message's position in the write
// (SPEC §9.6), so replays and resumes produce identical state.
func messageID(path string, position int) string {
	return path + "#" + strconv.Itoa(position)
}
