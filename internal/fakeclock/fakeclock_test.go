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
