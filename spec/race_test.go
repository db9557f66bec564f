//go:build race

package spec

// raceEnabled is true when the tests run under the race detector, which
// slows time-bounded tests several times.
const raceEnabled = true
