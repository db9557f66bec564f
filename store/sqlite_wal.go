package store

import (
	"context"
	"database/sql"
	"time"
)

// SQLite's automatic checkpoint copies the write-ahead log into the
// database file inside the commit that takes the log past 1,000 pages,
// on the committing connection: whichever write crosses the line waits
// for the copy and its two fsyncs. In the 2,000-request benchmark that
// was 21–77 ms once every 16 runs; a run's creation and its step-0
// checkpoint write almost half its pages, so the write that crossed was
// often one of them, before the run's first request. The store checkpoints in the background instead: its
// writers count what they write (under wmu), and past walCheckpointBytes
// a goroutine of the store's runs a passive checkpoint, which waits for
// no reader or writer. SQLite's own checkpoint stays as a backstop, at
// walBackstopPages, for a log the goroutine cannot keep short (other
// processes' writes, which it does not count).

// walCheckpointBytes is how much the store writes before it asks for a
// checkpoint: about SQLite's default of 1,000 pages.
const walCheckpointBytes = 4 << 20

// walPageBytes is what a commit is counted at besides its values: it
// rewrites at least one page of a table and one of an index.
const walPageBytes = 2 * 4096

// walBackstopPages is SQLite's automatic checkpoint (PRAGMA
// wal_autocheckpoint), at twice the background checkpoint's size. Each
// process counts only its own writes: with another process holding the
// store open (`lgx runs watch`, another run), many short runs that each
// write less than walCheckpointBytes, and so close without the checkpoint
// a last connection makes, would grow the log to this.
const walBackstopPages = 2_000

// walCheckpointer runs the store's background checkpoints. Its fields
// are guarded by SQLite.wmu.
type walCheckpointer struct {
	db      *sql.DB
	written int64 // since the last checkpoint was asked for
	running bool  // the goroutine was started
	closed  bool

	wake chan struct{} // a checkpoint is due (capacity 1)
	stop chan struct{}
	done chan struct{}
}

func newWALCheckpointer(db *sql.DB) *walCheckpointer {
	return &walCheckpointer{db: db, wake: make(chan struct{}, 1), stop: make(chan struct{}), done: make(chan struct{})}
}

// wrote counts a commit that wrote n bytes of values. The goroutine is
// started by the first checkpoint a store needs, so that the many
// short-lived stores (`lgx runs`, tests) start none.
func (w *walCheckpointer) wrote(n int) {
	if w == nil { // read-only
		return
	}
	w.written += int64(n) + walPageBytes
	if w.written < walCheckpointBytes || w.closed {
		return
	}
	w.written = 0
	if !w.running {
		w.running = true
		go w.loop()
	}
	select {
	case w.wake <- struct{}{}:
	default: // one is already due
	}
}

func (w *walCheckpointer) loop() {
	defer close(w.done)
	for {
		select {
		case <-w.stop:
			return
		case <-w.wake:
		}
		// A passive checkpoint that finds the log busy (a connection
		// opening it, another process's checkpoint) does nothing and says
		// so: it is tried again, a few times, as a busy handler would.
		// A failure (the file went read-only, say) is not the writers':
		// their commits succeeded, and the backstop still checkpoints.
		wait := time.Millisecond
		for range walCheckpointTries {
			if !w.checkpoint() {
				break
			}
			select {
			case <-w.stop:
				return
			case <-time.After(wait):
			}
			wait *= 2
		}
	}
}

// walCheckpointTries bounds the tries of one checkpoint: 1 + 2 + … + 512
// ms, about a second, between them.
const walCheckpointTries = 10

// checkpoint runs a passive checkpoint and reports whether the log was
// busy.
func (w *walCheckpointer) checkpoint() (busy bool) {
	var b, frames, copied int
	err := w.db.QueryRowContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)").Scan(&b, &frames, &copied)
	return err == nil && b != 0
}

// close stops the goroutine, waiting for a checkpoint under way.
func (w *walCheckpointer) close() {
	if w == nil {
		return
	}
	w.closed = true
	if w.running {
		close(w.stop)
		<-w.done
		w.running = false
	}
}

// argBytes is what a statement's arguments write, roughly: their bytes.
func argBytes(args []any) int {
	n := 0
	for _, a := range args {
		switch v := a.(type) {
		case []byte:
			n += len(v)
		case string:
			n += len(v)
		}
	}
	return n
}
