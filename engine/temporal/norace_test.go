//go:build !race

package temporal

// raceEnabled is true when the tests run under the race detector.
const raceEnabled = false
