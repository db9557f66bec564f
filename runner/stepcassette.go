package runner

import (
	"fmt"
	"net/http"
	"os"
	"strings"

	"github.com/lgx-run/lgx/internal/cassette"
	"github.com/lgx-run/lgx/nodes"
	"github.com/lgx-run/lgx/store"
)

// ReplayCassette is a cassette a step-by-step run answers its HTTP
// requests from (`lgx run --replay` on an engine): the file's path as the
// client named it (the failures name it, as a local replay's do) and the
// content the client read. It is recorded with the run, so that every
// worker that opens a step of the run (and of its resumes) replays it
// without the client's file system.
type ReplayCassette struct {
	Path string
	Data []byte
}

// Recorded with the run's sources under cassetteKeyPrefix + Path + "/":
// a subgraph's key is a cleaned path, which never ends in "/", so the two
// cannot meet in run_sources, and the stores need no column of their own.
const cassetteKeyPrefix = "lgx:replay-cassette/"

// withCassette returns the sources to record with a run: the subgraph
// texts, plus c's content when the run replays a cassette.
func withCassette(sources map[string][]byte, c *ReplayCassette) map[string][]byte {
	if c == nil {
		return sources
	}
	out := make(map[string][]byte, len(sources)+1)
	for k, v := range sources {
		out[k] = v
	}
	out[cassetteKeyPrefix+c.Path+"/"] = c.Data
	return out
}

// recordedCassette is the cassette recorded with run rec, if any.
func recordedCassette(rec *store.Run) *ReplayCassette {
	for k, v := range rec.Subgraphs {
		if p, ok := strings.CutPrefix(k, cassetteKeyPrefix); ok && strings.HasSuffix(p, "/") {
			return &ReplayCassette{Path: strings.TrimSuffix(p, "/"), Data: v}
		}
	}
	return nil
}

// replayClient is the HTTP client a step of run rec sends with: client
// itself, or, when the run replays a cassette, a client that answers
// from it and sends nothing. Its secrets are the executing process's (the
// values its requests carry), redacted before matching as locally.
func replayClient(rec *store.Run, g *Graph, environ []string, client *http.Client) (*http.Client, error) {
	rc := recordedCassette(rec)
	if rc == nil {
		return client, nil
	}
	if environ == nil {
		environ = os.Environ()
	}
	c, err := cassette.ReplayData(rc.Path, rc.Data, cassette.Secrets(g.wf, environ))
	if err != nil {
		// The client checked the file before recording it: another
		// attempt reads the same bytes, so this is final (an
		// InputError is not retried by the engine).
		return nil, &InputError{Msg: fmt.Sprintf("run %s: recorded %v", rec.ID, err)}
	}
	if client == nil {
		client = nodes.NewHTTPClient("lgx")
	}
	return c.Wrap(client), nil
}
