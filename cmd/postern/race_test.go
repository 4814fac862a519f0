//go:build race

package main

// raceEnabled: timings under the race detector say nothing about
// production timings.
const raceEnabled = true
