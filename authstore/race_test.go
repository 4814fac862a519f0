//go:build race

package authstore

// raceEnabled: timings under the race detector say nothing about
// production timings.
const raceEnabled = true
