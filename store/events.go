package store

import (
	"bytes"
	"context"
	"fmt"
)

// EventLog is implemented by stores that keep a run's events for clients
// in other processes: the workers of a distributed engine append what
// their invocations report (attempts, tokens, retries, tool calls), and
// the client that started the run reads the log to show the live view
// and `--stream events` of a local run.
//
// The log is a sequence of batches per run. A batch's sequence number is
// one more than the run's last, assigned when the batch is committed and
// in commit order, so a reader that has seen batch n only ever finds
// batches after n: it reads on from the last number it saw.
type EventLog interface {
	// AppendEvents appends events, each one JSON-encoded event, to run
	// runID's log as one batch, in one transaction. An unknown run is an
	// error wrapping ErrNotFound.
	AppendEvents(ctx context.Context, runID string, events [][]byte) error
	// Events returns run runID's batches after sequence number after, in
	// order, at most EventBatchLimit of them.
	Events(ctx context.Context, runID string, after int64) ([]EventBatch, error)
}

// EventBatch is one batch of a run's event log.
type EventBatch struct {
	Seq    int64
	Events [][]byte
}

// EventBatchLimit bounds the batches one Events call returns, so that a
// reader far behind catches up in steps of bounded memory.
const EventBatchLimit = 1000

// EncodeEvents joins a batch's events into the one value a store keeps,
// a line each: an encoded event is one line (JSON escapes newlines in
// strings), which EncodeEvents checks.
func EncodeEvents(events [][]byte) ([]byte, error) {
	var b bytes.Buffer
	for i, e := range events {
		if len(e) == 0 || bytes.IndexByte(e, '\n') >= 0 {
			return nil, fmt.Errorf("event %d of the batch is not one line of JSON", i)
		}
		b.Write(e)
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// DecodeEvents splits a value written by EncodeEvents into its events.
func DecodeEvents(data []byte) [][]byte {
	var out [][]byte
	for len(data) > 0 {
		line, rest, _ := bytes.Cut(data, []byte{'\n'})
		if len(line) > 0 {
			out = append(out, line)
		}
		data = rest
	}
	return out
}
