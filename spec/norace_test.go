//go:build !race

package spec

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false
