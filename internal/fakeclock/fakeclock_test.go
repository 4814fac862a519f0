package fakeclock

import (
	"context"
	"slices"
	"testing"
	"time"
)

func TestClock(t *testing.T) {
	t0 := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c := New(t0)
	c.Advance(90 * time.Second)
	if got := c.Now(); !got.Equal(t0.Add(90 * time.Second)) {
		t.Errorf("after Advance: %v", got)
	}
	c.Set(t0)
	if got := c.Now(); !got.Equal(t0) {
		t.Errorf("after Set: %v", got)
	}
}

func TestSleepsAdvanceUntilFrozen(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := New(t0)
	s := NewSleeps(c)
	ctx := context.Background()
	s.Sleep(ctx, time.Second)
	s.Sleep(ctx, 2*time.Second)
	if got := c.Now(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("sleeps moved the clock to %v", got)
	}
	s.Freeze()
	s.Sleep(ctx, time.Hour)
	if got := c.Now(); !got.Equal(t0.Add(3 * time.Second)) {
		t.Errorf("a frozen sleep moved the clock to %v", got)
	}
	if got := s.Take(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second, time.Hour}) {
		t.Errorf("Take = %v", got)
	}
	if got := s.Take(); len(got) != 0 {
		t.Errorf("second Take = %v", got)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := NewSleeps(nil).Sleep(cancelled, time.Second); err == nil {
		t.Error("a sleep on a cancelled context succeeded")
	}
}

// TestTimers: a timer runs once the clock passes its time, at that time,
// earliest first; a stopped one never runs.
func TestTimers(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := New(t0)
	var ran []time.Duration
	note := func() { ran = append(ran, c.Now().Sub(t0)) }
	c.AfterFunc(3*time.Second, note)
	c.AfterFunc(time.Second, note)
	stop := c.AfterFunc(2*time.Second, note)
	if got := c.Timers(); !slices.Equal(got, []time.Duration{time.Second, 2 * time.Second, 3 * time.Second}) {
		t.Errorf("Timers = %v", got)
	}
	if !stop() || stop() {
		t.Error("stop should report true once, then false")
	}
	c.Advance(time.Second - time.Nanosecond)
	if len(ran) != 0 {
		t.Errorf("ran early: %v", ran)
	}
	c.Set(t0.Add(5 * time.Second))
	if !slices.Equal(ran, []time.Duration{time.Second, 3 * time.Second}) {
		t.Errorf("ran at %v", ran)
	}
	if n := len(c.Timers()); n != 0 {
		t.Errorf("%d timers left", n)
	}
}
