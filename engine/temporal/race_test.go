//go:build race

package temporal

// raceEnabled is true when the tests run under the race detector, which
// multiplies the CPU an invocation costs in the test process about 4×.
const raceEnabled = true
