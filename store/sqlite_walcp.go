package store

import (
	"context"
	"os"
	"sync"
)

// walCheckpointBytes is the size of the WAL file at which the background
// checkpointer folds it back into the database: about SQLite's own
// default of 1,000 pages of 4 KiB.
const walCheckpointBytes = 4 << 20

// writeLock is SQLite.wmu: it serializes this process's writers, and its
// Unlock tells the checkpointer that the WAL may have grown.
//
// Why a checkpointer of our own: SQLite's automatic checkpoint runs inside
// the commit that takes the WAL past 1,000 pages, and it copies those
// pages into the database and fsyncs both files before the commit
// returns. That commit is whichever write comes next: a run's creation,
// its step-0 checkpoint, an item's record the step's barrier waits for, or
// the run's end, which then waited 5 to 50 ms on the disk (issue 13,
// BenchmarkHTTPThroughput). The connections are opened with
// wal_autocheckpoint(0) and the checkpointer does the same work on a
// connection of its own, while the writers go on. Durability is
// unchanged: a commit is durable once its frames are in the WAL, which a
// checkpoint only copies from.
type writeLock struct {
	sync.Mutex
	wrote chan struct{} // capacity 1; nil when nothing is written (read-only)
}

// Unlock releases the lock and wakes the checkpointer without waiting.
func (l *writeLock) Unlock() {
	l.Mutex.Unlock()
	if l.wrote != nil {
		select {
		case l.wrote <- struct{}{}:
		default: // a wake-up is already pending
		}
	}
}

// startCheckpointer starts the goroutine that checkpoints the WAL at
// walPath; Close stops it before closing the database.
func (s *SQLite) startCheckpointer(walPath string) {
	s.wmu.wrote = make(chan struct{}, 1)
	s.cpStop, s.cpDone = make(chan struct{}), make(chan struct{})
	go s.checkpointer(walPath)
}

// checkpointer runs a PASSIVE checkpoint (it never blocks a reader or a
// writer) each time the WAL file has grown past walCheckpointBytes, or
// past its size at the last checkpoint. The WAL file keeps its size once
// checkpointed (SQLite writes it again from its start), so growing past
// that size means it holds about as many new pages as when it was last
// checkpointed, or that a reader kept the last checkpoint from
// finishing: SQLite's automatic checkpoint retries on every commit then,
// as this does on every write.
func (s *SQLite) checkpointer(walPath string) {
	defer close(s.cpDone)
	mark, last := int64(walCheckpointBytes), int64(0)
	for {
		select {
		case <-s.cpStop:
			return
		case <-s.wmu.wrote:
		}
		fi, err := os.Stat(walPath)
		if err != nil {
			continue // no WAL yet, or another process's last close removed it
		}
		size := fi.Size()
		if size < last {
			// Truncated or removed and started again (another process's
			// last close checkpointed it): measure from scratch.
			mark = walCheckpointBytes
		}
		last = size
		if size < mark {
			continue
		}
		// A failed or partial checkpoint loses nothing (the WAL keeps the
		// pages); the next write past the mark tries again.
		_, _ = s.db.ExecContext(context.Background(), "PRAGMA wal_checkpoint(PASSIVE)")
		mark = size + 1
	}
}

// stopCheckpointer ends the checkpointer; the database's last close
// checkpoints what remains.
func (s *SQLite) stopCheckpointer() {
	if s.cpStop != nil {
		close(s.cpStop)
		<-s.cpDone
	}
}
