package nodes

import (
	"fmt"
	"sort"
	"sync"
)

// The registry is the one global of lgx: the catalog, filled by each type's
// init function and read everywhere else.
var (
	registryMu sync.RWMutex
	registry   = map[string]Type{}
)

// Register adds a type to the catalog; it panics on a duplicate name, which
// is a programming error caught by any test.
func Register(t Type) {
	registryMu.Lock()
	defer registryMu.Unlock()
	if _, dup := registry[t.Name()]; dup {
		panic(fmt.Sprintf("nodes: type %q registered twice", t.Name()))
	}
	registry[t.Name()] = t
}

// Lookup returns the type named name.
func Lookup(name string) (Type, bool) {
	registryMu.RLock()
	defer registryMu.RUnlock()
	t, ok := registry[name]
	return t, ok
}

// Names returns the catalog's type names, sorted.
func Names() []string {
	registryMu.RLock()
	defer registryMu.RUnlock()
	names := make([]string, 0, len(registry))
	for n := range registry {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
