// Package fakeclock is the one fake of clock.Clock: a clock that tests set
// and advance, whose timers run as the time they wait for is passed; and a
// stand-in for a sleep function that records each delay asked for instead
// of waiting. It serves the tests of every package that takes a clock and
// a sleep function as options.
package fakeclock

import (
	"context"
	"slices"
	"sync"
	"time"

	"github.com/postern-dev/postern/internal/clock"
)

var _ clock.Clock = (*Clock)(nil)

// Clock reads a time that moves only when told to.
type Clock struct {
	mu     sync.Mutex
	now    time.Time
	timers []*timer
	waits  chan time.Duration
}

type timer struct {
	at time.Time
	f  func()
}

// New returns a clock standing at t.
func New(t time.Time) *Clock { return &Clock{now: t, waits: make(chan time.Duration, maxWaits)} }

// maxWaits is how many timers' waits Waits holds unread.
const maxWaits = 64

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// AfterFunc sets a timer that calls f when the clock is moved to d from
// now or past it, in the goroutine that moves it.
func (c *Clock) AfterFunc(d time.Duration, f func()) func() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := &timer{at: c.now.Add(d), f: f}
	c.timers = append(c.timers, t)
	select {
	case c.waits <- d:
	default: // nobody reads them
	}
	return func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		i := slices.Index(c.timers, t)
		if i < 0 {
			return false
		}
		c.timers = slices.Delete(c.timers, i, i+1)
		return true
	}
}

// Waits receives the wait of each timer as it is set (up to 64 unread; later
// ones are dropped): a test learns from it that the code it drives is
// waiting, and for how long.
func (c *Clock) Waits() <-chan time.Duration { return c.waits }

// Timers returns how long each timer set has left to wait, soonest first.
func (c *Clock) Timers() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]time.Duration, 0, len(c.timers))
	for _, t := range c.timers {
		out = append(out, t.at.Sub(c.now))
	}
	slices.Sort(out)
	return out
}

// Set moves the clock to t. Moving forward runs the timers passed on the
// way, as Advance does.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	c.moveTo(t)
}

// Advance moves the clock forward by d, running each timer that falls due
// on the way at its own time, earliest first.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.moveTo(c.now.Add(d))
}

// moveTo is called with c.mu held and releases it. It lets go of the lock
// only to run a timer, so that a timer may read the clock or set another.
func (c *Clock) moveTo(target time.Time) {
	for {
		i := -1
		for j, t := range c.timers {
			if !t.at.After(target) && (i < 0 || t.at.Before(c.timers[i].at)) {
				i = j
			}
		}
		if i < 0 {
			break
		}
		t := c.timers[i]
		c.timers = slices.Delete(c.timers, i, i+1)
		c.now = t.at
		c.mu.Unlock()
		t.f()
		c.mu.Lock()
	}
	c.now = target
	c.mu.Unlock()
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
