// Package fakeclock is a clock that tests set and advance, and a stand-in
// for a sleep function that records each delay asked for instead of
// waiting. It serves the tests of the packages that take a clock and a
// sleep function as options.
package fakeclock

import (
	"context"
	"sync"
	"time"
)

// Clock reads a time that moves only when told to.
type Clock struct {
	mu  sync.Mutex
	now time.Time
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{now: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

// Advance moves the clock forward by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// Sleeps records the delays asked of Sleep. With a clock, each sleep moves
// it forward as a real sleep would let time pass, until Freeze.
type Sleeps struct {
	clock *Clock

	mu     sync.Mutex
	frozen bool
	delays []time.Duration
}

// NewSleeps returns a recorder that advances c (nil: no clock moves).
func NewSleeps(c *Clock) *Sleeps { return &Sleeps{clock: c} }

// Sleep records d, advances the clock unless frozen, and returns at once
// with ctx's error.
func (s *Sleeps) Sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.delays = append(s.delays, d)
	advance := s.clock != nil && !s.frozen
	s.mu.Unlock()
	if advance {
		s.clock.Advance(d)
	}
	return ctx.Err()
}

// Freeze stops later sleeps from moving the clock.
func (s *Sleeps) Freeze() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.frozen = true
}

// Take returns and forgets the delays recorded so far.
func (s *Sleeps) Take() []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	d := s.delays
	s.delays = nil
	return d
}
