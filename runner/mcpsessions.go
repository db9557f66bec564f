package runner

import (
	"errors"
	"os"
	"sync"
	"time"

	"github.com/lgx-run/lgx/nodes/mcp"
)

// MCPSessions keeps the MCP sessions of the runs a process executes step
// by step (OpenStep with StepOptions.MCP), one per run and server
// declaration, as a local run keeps them for its whole run tree: a run's
// steps are each opened and closed again, but its servers are started
// once and serve every step (a stdio server keeps whatever state it
// holds, as it does in a local run).
//
// A run's sessions are stopped when End reports the run ended, when no
// call used them for Idle (the run continues on other workers, paused,
// or stopped), or by Close. A run used again after that starts its
// servers again. Its methods are safe for concurrent use.
type MCPSessions struct {
	// Idle is how long a run's sessions stay without a call in flight
	// (0: DefaultMCPIdle).
	Idle time.Duration
	// Stderr receives each line a run's stdio server writes to its
	// stderr, secrets redacted, and errors stopping its servers (server
	// ""); nil discards them.
	Stderr func(run, server, line string)

	mu     sync.Mutex
	runs   map[string]*runSessions
	closed bool

	stopping sync.WaitGroup // sessions being stopped in the background (End)
}

// DefaultMCPIdle is MCPSessions.Idle when unset: as long as a worker keeps
// an unused step open.
const DefaultMCPIdle = time.Minute

// runSessions are one run's sessions.
type runSessions struct {
	tree  *mcpTree
	inUse int         // calls in flight (and tool listings)
	timer *time.Timer // armed while inUse is 0
	gen   int         // counts timers armed: a stale one does nothing
}

// use returns run's manager of declaration d, its sessions made with opts
// on first use, and done, to call once the caller no longer uses it.
func (s *MCPSessions) use(run string, d mcpDecl, opts mcp.Options) (*mcp.Manager, func()) {
	s.mu.Lock()
	e := s.runs[run]
	if e == nil {
		e = &runSessions{tree: &mcpTree{byDecl: map[string]*mcp.Manager{}, opts: opts, closed: s.closed}}
		if !s.closed { // else a closed tree, whose managers refuse every call
			if s.runs == nil {
				s.runs = map[string]*runSessions{}
			}
			s.runs[run] = e
		}
	}
	e.inUse++
	if e.timer != nil {
		e.timer.Stop()
		e.timer = nil
	}
	s.mu.Unlock()
	var once sync.Once
	return e.tree.manager(d), func() { once.Do(func() { s.release(run, e) }) }
}

// release ends one use of run's sessions e; the last one arms the idle
// timer.
func (s *MCPSessions) release(run string, e *runSessions) {
	s.mu.Lock()
	defer s.mu.Unlock()
	e.inUse--
	if e.inUse > 0 || s.runs[run] != e {
		return
	}
	e.gen++
	gen := e.gen
	idle := s.Idle
	if idle <= 0 {
		idle = DefaultMCPIdle
	}
	e.timer = time.AfterFunc(idle, func() { s.expire(run, e, gen) })
}

// expire stops run's sessions e if no call used them since timer gen was
// armed.
func (s *MCPSessions) expire(run string, e *runSessions, gen int) {
	s.mu.Lock()
	if s.runs[run] != e || e.inUse > 0 || e.gen != gen {
		s.mu.Unlock()
		return
	}
	delete(s.runs, run)
	s.mu.Unlock()
	s.closeTree(e.tree)
}

// End stops run's servers on this process: the run has ended (completed,
// failed, cancelled or paused at an interrupt, as a local run stops its
// servers then). A call still in flight fails. The servers stop in the
// background: a stdio server that ignores its closed stdin takes seconds
// to be terminated, which the run's last step need not wait for (Close
// waits for them).
func (s *MCPSessions) End(run string) {
	s.mu.Lock()
	e := s.runs[run]
	delete(s.runs, run)
	if e != nil && e.timer != nil {
		e.timer.Stop()
	}
	if e != nil {
		s.stopping.Add(1)
	}
	s.mu.Unlock()
	if e != nil {
		go func() {
			defer s.stopping.Done()
			s.closeTree(e.tree)
		}()
	}
}

// Close stops every run's servers, and waits for those End stops; later
// calls are refused. Call it once the process no longer executes steps.
func (s *MCPSessions) Close() {
	s.mu.Lock()
	s.closed = true
	runs := s.runs
	s.runs = nil
	s.mu.Unlock()
	var wg sync.WaitGroup
	for _, e := range runs {
		if e.timer != nil {
			e.timer.Stop()
		}
		wg.Go(func() { s.closeTree(e.tree) }) // each may take seconds
	}
	wg.Wait()
	s.stopping.Wait()
}

// Active returns how many runs have sessions open on this process.
func (s *MCPSessions) Active() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.runs)
}

func (s *MCPSessions) closeTree(t *mcpTree) {
	err := t.close()
	// A server that exited before it was stopped has nothing to report.
	if err != nil && !errors.Is(err, os.ErrProcessDone) && t.opts.Stderr != nil {
		t.opts.Stderr("", err.Error()) // redacted as the servers' lines are
	}
}

func (s *MCPSessions) stderr(run, server, line string) {
	if s.Stderr != nil {
		s.Stderr(run, server, line)
	}
}
