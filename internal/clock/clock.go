// Package clock is the one clock interface of postern: authstore, admin
// and proxy read the time through it and the registry sets its timer on it,
// so that tests move time by hand (internal/fakeclock) instead of sleeping.
// Each package takes a Clock in its configuration; nil means System.
package clock

import "time"

// Clock reads the time and sets timers.
type Clock interface {
	// Now returns the current time. System's readings carry the monotonic
	// clock, so durations between them survive a step of the wall clock.
	Now() time.Time
	// AfterFunc calls f in its own goroutine once d has passed; stop
	// cancels that and reports whether it did.
	AfterFunc(d time.Duration, f func()) (stop func() bool)
}

// System is the machine's clock.
var System Clock = system{}

type system struct{}

func (system) Now() time.Time { return time.Now() }

func (system) AfterFunc(d time.Duration, f func()) func() bool {
	return time.AfterFunc(d, f).Stop
}

// Or returns c, or System when c is nil: the default a configuration
// applies.
func Or(c Clock) Clock {
	if c == nil {
		return System
	}
	return c
}
