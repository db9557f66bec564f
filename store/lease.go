package store

import (
	"errors"
	"fmt"
	"os"
	"time"
)

// Lease is a process's claim to execute a run (SPEC §9.3). The owner renews
// it while the run executes and releases it when the run stops.
type Lease struct {
	Owner   string // unique per executing process and run
	PID     int
	Host    string
	Expires time.Time
}

// LeaseTTL is how long a lease lives without renewal; an owner renews it
// every LeaseTTL/3. An owner on another host that died is replaced once its
// lease expired, so at most LeaseTTL after its death.
const LeaseTTL = 30 * time.Second

// ErrLeaseLost is wrapped when an owner renews a lease another owner took.
var ErrLeaseLost = errors.New("lease lost")

// LeaseError is returned by AcquireLease when a live owner holds the run.
type LeaseError struct {
	RunID  string
	Holder Lease
}

func (e *LeaseError) Error() string {
	return fmt.Sprintf("run %s is being executed by process %d on %s (owner %s)", e.RunID, e.Holder.PID, e.Holder.Host, e.Holder.Owner)
}

// Alive reports whether a lease's holder still holds what it leased (a
// pool slot, a budget reservation): the lease has not expired and, on this
// host, its pid exists. A holder that stopped renewing gives its share back
// when its lease expires, so that a hung process cannot stall every other.
func (l *Lease) Alive(now time.Time) bool {
	if l == nil || !now.Before(l.Expires) {
		return false
	}
	if l.Host != Hostname() {
		return true
	}
	return pidAlive(l.PID)
}

// OwnerAlive reports whether a run lease's owner may still be executing
// the run at now (SPEC §9.3). On this host the owner is alive while its
// pid is: a process stopped (SIGSTOP) or hung past its lease still holds
// the run, and a resume names it rather than run the run twice. Its
// lease expiring frees the run only when the pid now belongs to a process
// started after the lease expired (the owner died and its pid was
// reused; told on Linux). On another host, whose pids mean nothing here,
// the owner is alive until its lease expires.
func (l *Lease) OwnerAlive(now time.Time) bool {
	if l == nil {
		return false
	}
	if l.Host != Hostname() {
		return now.Before(l.Expires)
	}
	if !pidAlive(l.PID) {
		return false
	}
	return now.Before(l.Expires) || !startedAfter(l.PID, l.Expires)
}

// Hostname is this machine's name as leases record it.
func Hostname() string {
	h, err := os.Hostname()
	if err != nil || h == "" {
		return "localhost"
	}
	return h
}

// effectiveStatus reports a stored status as readers see it: running with
// no live owner is stale.
func effectiveStatus(s Status, l *Lease, now time.Time) Status {
	if s == StatusRunning && !l.OwnerAlive(now) {
		return StatusStale
	}
	return s
}

// checkLease rejects a lease the store cannot key.
func checkLease(runID string, l Lease) error {
	if l.Owner == "" {
		return fmt.Errorf("acquire lease of run %s: empty owner", runID)
	}
	return nil
}

// leaseHeld returns a *LeaseError when cur is a live lease of an owner
// other than owner: AcquireLease must not take it.
func leaseHeld(runID string, cur *Lease, owner string, now time.Time) error {
	if cur != nil && cur.Owner != owner && cur.OwnerAlive(now) {
		return &LeaseError{RunID: runID, Holder: *cur}
	}
	return nil
}
