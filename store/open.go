package store

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
)

// ErrBadStoreURL is wrapped by Open's error for a URL it cannot use, so the
// CLI can report a usage error.
var ErrBadStoreURL = errors.New("bad store URL")

// Opener opens a server-backed store from its URL.
type Opener func(ctx context.Context, url string) (Store, error)

var (
	openersMu sync.Mutex
	openers   = map[string]Opener{}
)

// RegisterOpener makes Open hand URLs of scheme ("postgres") to open. A
// store in its own package registers itself from init, so that this
// package does not import its driver (and the driver does not import a
// cycle); the binary that wants it imports the package.
func RegisterOpener(scheme string, open Opener) {
	openersMu.Lock()
	defer openersMu.Unlock()
	openers[scheme] = open
}

// Open opens the store a URL names (SPEC §9.8):
//
//	""  or "sqlite"   the default SQLite file (DefaultPath)
//	"sqlite:PATH"     the SQLite file at PATH
//	"memory"          a new in-memory store
//	"postgres://…"    a PostgreSQL database (also postgresql://), when the
//	                  store/postgres package is linked in
func Open(ctx context.Context, url string) (Store, error) {
	switch {
	case url == "" || url == "sqlite":
		path, err := DefaultPath()
		if err != nil {
			return nil, err
		}
		return OpenSQLite(path)
	case url == "memory":
		return NewMemory(), nil
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
		if path == "" {
			return nil, fmt.Errorf("%w: %q names no file (sqlite:PATH)", ErrBadStoreURL, url)
		}
		return OpenSQLite(path)
	}
	scheme, _, ok := strings.Cut(url, "://")
	if !ok {
		return nil, fmt.Errorf("%w: %q: use sqlite:PATH, memory or postgres://…", ErrBadStoreURL, url)
	}
	if scheme == "postgresql" {
		scheme = "postgres"
	}
	openersMu.Lock()
	open := openers[scheme]
	known := make([]string, 0, len(openers))
	for s := range openers {
		known = append(known, s+"://")
	}
	openersMu.Unlock()
	if open == nil {
		sort.Strings(known)
		return nil, fmt.Errorf("%w: %q: no store for scheme %s (known: %s)", ErrBadStoreURL, Redact(url), scheme, strings.Join(append([]string{"sqlite:PATH", "memory"}, known...), ", "))
	}
	return open(ctx, url)
}

// Redact returns url with its password replaced by "xxxxx", for messages:
// a store URL may carry credentials.
func Redact(url string) string {
	scheme, rest, ok := strings.Cut(url, "://")
	if !ok {
		return url
	}
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok || strings.Contains(userinfo, "/") {
		return url
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return url
}
