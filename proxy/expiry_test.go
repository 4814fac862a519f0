package proxy

import (
	"slices"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fakeclock"
)

// testEpoch is where the tests' fake clocks start.
var testEpoch = time.Date(2027, 1, 1, 12, 0, 0, 0, time.UTC)

func timedEntry(id, user, cred string, expires time.Time) *fakeEntry {
	return &fakeEntry{si: SessionInfo{ID: id, Username: user, CredentialID: cred, Expires: expires}}
}

func addAll(t *testing.T, r *Registry, es ...*fakeEntry) {
	t.Helper()
	for _, e := range es {
		if err := r.add(e, r.mark()); err != nil {
			t.Fatalf("add %s: %v", e.si.ID, err)
		}
	}
}

func TestExpiryEndsSessionsWhenTheAppPasswordExpires(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	start := clk.Now()
	soon := timedEntry("s1", "alice", "a1", start.Add(10*time.Second))
	later := timedEntry("s2", "alice", "a2", start.Add(2*time.Hour))
	never := timedEntry("s3", "alice", "password", time.Time{})
	addAll(t, r, later, soon, never)

	clk.Advance(10*time.Second - time.Millisecond)
	if soon.ended {
		t.Fatal("ended before its expiry")
	}
	clk.Advance(time.Millisecond)
	if !soon.ended || soon.reason != reasonExpired {
		t.Fatalf("at its expiry: ended %v, reason %q", soon.ended, soon.reason.Text)
	}
	if later.ended || never.ended {
		t.Fatal("another session ended with the first expiry")
	}
	clk.Advance(2 * time.Hour)
	if !later.ended || never.ended {
		t.Fatalf("after two hours: later ended %v, never ended %v", later.ended, never.ended)
	}
	if n := len(clk.Timers()); n != 0 {
		t.Errorf("%d timers left with nothing to expire", n)
	}
}

func TestExpiryForgetsRemovedSessions(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	e := timedEntry("s1", "alice", "a1", clk.Now().Add(time.Minute))
	addAll(t, r, e)
	r.remove("s1")
	if n := len(clk.Timers()); n != 0 {
		t.Errorf("%d timers left after the only timed session left", n)
	}
	clk.Advance(time.Hour)
	if e.ended {
		t.Error("a session that had left was ended")
	}
	if len(r.byUser)+len(r.byCred)+len(r.expiry) != 0 {
		t.Errorf("indexes not empty: %v %v %v", r.byUser, r.byCred, r.expiry)
	}
}

// TestExpiryDuringLogin: a login whose app password expired between the
// verdict and the registration is refused.
func TestExpiryDuringLogin(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	mark := r.mark()
	clk.Advance(time.Second)
	e := timedEntry("s1", "alice", "a1", clk.Now())
	if err := r.add(e, mark); err == nil {
		t.Fatal("registered a session whose app password had expired")
	}
	if r.Count() != 0 {
		t.Fatal("expired session listed")
	}
}

func TestGraceEndEndsAccountPasswordSessions(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	pop := population(t, r)
	r.setGrace(clk.Now().Add(5 * time.Second))
	clk.Advance(5*time.Second - time.Millisecond)
	if got := endedKeys(pop); got != nil {
		t.Fatalf("before the grace date: %v ended", got)
	}
	// A password login in flight when the grace period ends does not slip in.
	mark := r.mark()
	clk.Advance(time.Millisecond)
	want := []string{"alice/password", "bob/password"}
	if got := endedKeys(pop); !slices.Equal(got, want) {
		t.Fatalf("at the grace date: %v ended, want %v", got, want)
	}
	for _, k := range want {
		if pop[k].reason != reasonGraceEnded {
			t.Errorf("%s ended with %q", k, pop[k].reason.Text)
		}
	}
	if err := r.add(timedEntry("late", "carol", "password", time.Time{}), mark); err == nil {
		t.Error("a password login in flight at the grace date was registered")
	}
	if n := len(clk.Timers()); n != 0 {
		t.Errorf("%d timers left after the grace period ended", n)
	}
}

func TestGraceMovedOrCancelled(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	pop := population(t, r)
	start := clk.Now()
	r.setGrace(start.Add(5 * time.Second))
	r.setGrace(start.Add(3 * time.Hour)) // extended
	clk.Advance(time.Hour)
	if got := endedKeys(pop); got != nil {
		t.Fatalf("ended at the old grace date: %v", got)
	}
	r.setGrace(time.Time{}) // enforcement switched off
	clk.Advance(24 * time.Hour)
	if got := endedKeys(pop); got != nil {
		t.Fatalf("ended with no grace period running: %v", got)
	}
	if n := len(clk.Timers()); n != 0 {
		t.Errorf("%d timers left", n)
	}
}

func TestRegistryTimerWaitsAtMostAMinute(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	e := timedEntry("s1", "alice", "a1", clk.Now().Add(90*time.Minute))
	addAll(t, r, e)
	r.mu.Lock()
	armed := r.armedFor
	r.mu.Unlock()
	wait := clk.Timers()[0]
	if !armed.Equal(e.si.Expires) || wait != maxTimerWait {
		t.Errorf("armed for %v after %v; want %v after %v", armed, wait, e.si.Expires, maxTimerWait)
	}
	clk.Advance(90 * time.Minute)
	if !e.ended {
		t.Error("not ended at its expiry")
	}
}

func TestCloseStopsTheTimer(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	r := newRegistryWithClock(clk)
	addAll(t, r, timedEntry("s1", "alice", "a1", clk.Now().Add(time.Minute)))
	r.setGrace(clk.Now().Add(time.Second))
	r.Close()
	if n := len(clk.Timers()); n != 0 {
		t.Errorf("%d timers after Close", n)
	}
}

// TestExpiryEndsALiveRelay: an app password's expiry ends its relayed
// session within a second, while a session of another app password goes
// on; the expired one is refused at its next login.
func TestExpiryEndsALiveRelay(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	h := newHarness(t, withClock(clk, testEpoch.Add(time.Hour)))
	cl := h.loggedIn("alice", "ap-a1")
	if s := h.reg.List()[0]; s.AppPassName != "app a1" || !s.Expires.Equal(h.auth.expires) {
		t.Errorf("listed %+v", s)
	}
	clk.Advance(time.Hour)
	expectEnd(t, cl, reasonExpired.Text, time.Now().Add(time.Second))
	eventually(t, "the expired session to leave the registry", func() bool { return h.reg.Count() == 0 })
	late := h.dial()
	late.Write("LOGIN alice ap-a1\r\n")
	late.ExpectLines("NO auth")
}
