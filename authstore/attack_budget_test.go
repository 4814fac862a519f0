package authstore

import (
	"errors"
	"fmt"
	"testing"
)

// guessTally counts what an attacker's guesses got: how many were checked
// by the KDF (verified) and how many were refused as throttled.
type guessTally struct {
	verified, throttled, firstThrottled int
	guesses                             int
}

// guess tries one wrong secret and books its outcome. A guess refused as
// throttled must not have run the KDF.
func (g *guessTally) guess(t *testing.T, e *testEnv, user, secret string, p Protocol, src string) {
	t.Helper()
	before := e.kdfRuns()
	_, err := e.login(user, secret, p, src)
	runs := e.kdfRuns() - before
	g.guesses++
	switch {
	case errors.Is(err, ErrThrottled):
		if runs != 0 {
			t.Fatalf("guess %d was throttled after %d KDF runs", g.guesses, runs)
		}
		g.throttled++
		if g.firstThrottled == 0 {
			g.firstThrottled = g.guesses
		}
	case errors.Is(err, ErrUnauthorized):
		if g.firstThrottled != 0 {
			t.Fatalf("guess %d verified after guess %d was throttled", g.guesses, g.firstThrottled)
		}
		g.verified += int(runs)
	default:
		t.Fatalf("guess %d: %v", g.guesses, err)
	}
}

// assertRefusedUnverified: the right secret is refused as throttled
// without running the KDF.
func assertRefusedUnverified(t *testing.T, e *testEnv, user, secret, src string) {
	t.Helper()
	before := e.kdfRuns()
	if _, err := e.login(user, secret, IMAP, src); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right secret from %s after the budget: %v, want ErrThrottled", src, err)
	}
	if runs := e.kdfRuns() - before; runs != 0 {
		t.Fatalf("right secret from %s after the budget ran %d KDFs", src, runs)
	}
}

// TestA1_PollingDoesNotReopenBudget: 50 rounds of 19 wrong guesses from
// one address, each round followed by a successful login of the real user
// (a mail app polling every few minutes), verify no more guesses than the
// account+source budget; the guesses after it are refused without being
// verified, even the right password.
func TestA1_PollingDoesNotReopenBudget(t *testing.T) {
	const nat, home, other = "203.0.113.9", "203.0.113.9", "198.51.100.44"
	tests := []struct {
		name     string
		attacker string
		user     string
		useApp   bool // the user's client logs in with an app password
		// wantPolls is whether every poll must succeed: polling with the
		// account password from the attacker's address stops once that
		// pair's budget is spent.
		wantPolls bool
	}{
		{"shared NAT, user polls with an app password", nat, home, true, true},
		{"shared NAT, user polls with the account password", nat, home, false, false},
		{"user polls from another address", other, home, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			_, app := e.addAppPassword(t, "alice")
			secret := goodPassword
			if tc.useApp {
				secret = app
			}
			if _, err := e.login("alice", secret, IMAP, tc.user); err != nil {
				t.Fatalf("first login: %v", err)
			}
			var g guessTally
			polls := 0
			for round := range 50 {
				for i := range 19 {
					g.guess(t, e, "alice", fmt.Sprintf("round %d guess %d", round, i), IMAP, tc.attacker)
				}
				_, err := e.login("alice", secret, IMAP, tc.user)
				if err == nil {
					polls++
				} else if tc.wantPolls {
					t.Fatalf("round %d: the user's own login: %v", round, err)
				}
			}
			budget := e.s.opts.Limits.PairBudget
			t.Logf("%d guesses: %d verified, %d throttled (account+source budget %d); %d of 50 polls logged in",
				g.guesses, g.verified, g.throttled, budget, polls)
			if g.verified != budget || g.firstThrottled != budget+1 {
				t.Fatalf("%d guesses verified, first throttled #%d; want %d and #%d", g.verified, g.firstThrottled, budget, budget+1)
			}
			assertRefusedUnverified(t, e, "alice", goodPassword, tc.attacker)
		})
	}
}

// TestA1_DistributedAttackWhileUserPolls: one guess each from 200 sources,
// in rounds of 10, while the user's own client logs in with the account
// password after every round: the account budget still bounds the guesses
// verified, and the user's known-good source keeps working.
func TestA1_DistributedAttackWhileUserPolls(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	const home = "192.0.2.10"
	if _, err := e.login("alice", goodPassword, IMAP, home); err != nil {
		t.Fatal(err)
	}
	protos := []Protocol{IMAP, POP3, CalDAV, CardDAV, Web}
	var g guessTally
	for round := range 20 {
		for i := range 10 {
			n := round*10 + i
			g.guess(t, e, "alice", fmt.Sprintf("guess %d", n), protos[n%len(protos)], fmt.Sprintf("10.1.%d.%d", n/100, n%100+1))
		}
		if _, err := e.login("alice", goodPassword, POP3, home); err != nil {
			t.Fatalf("round %d: the user's own client: %v", round, err)
		}
	}
	budget := e.s.opts.Limits.UserBudget
	t.Logf("%d guesses from %d sources: %d verified, %d throttled (account budget %d)",
		g.guesses, g.guesses, g.verified, g.throttled, budget)
	if g.verified != budget || g.firstThrottled != budget+1 {
		t.Fatalf("%d guesses verified, first throttled #%d; want %d and #%d", g.verified, g.firstThrottled, budget, budget+1)
	}
	assertRefusedUnverified(t, e, "alice", goodPassword, "10.1.0.5")
	assertRefusedUnverified(t, e, "alice", goodPassword, "198.51.100.200")
	t.Run("the budget counts over any 24 h", func(t *testing.T) {
		e.clock.Advance(e.s.opts.Limits.UserMemory)
		before := e.kdfRuns()
		if _, err := e.login("alice", "a day later", IMAP, "10.1.9.9"); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled) {
			t.Fatalf("a day later: %v, want a plain denial", err)
		}
		if e.kdfRuns() == before {
			t.Fatal("a guess a day later was not verified")
		}
	})
}

// TestA1_KnownGoodBehindBusyNAT: an office NAT where other accounts' wrong
// passwords slow the shared address; a user for whom that address is
// known-good logs in without waiting, and the others stay slowed.
func TestA1_KnownGoodBehindBusyNAT(t *testing.T) {
	e := newTestStore(t)
	for _, u := range []string{"alice", "bob", "carol"} {
		e.addUser(t, u)
	}
	const office = "203.0.113.50"
	if _, err := e.login("alice", goodPassword, IMAP, office); err != nil {
		t.Fatal(err)
	}
	for i := range 12 {
		user := []string{"bob", "carol"}[i%2]
		e.login(user, fmt.Sprintf("stale password %d", i), IMAP, office)
	}
	if d := e.sleeps.Take(); len(d) == 0 {
		t.Fatal("twelve failures from one address were not slowed")
	}
	for i := range 3 {
		if _, err := e.login("alice", goodPassword, IMAP, office); err != nil {
			t.Fatalf("alice from the office, login %d: %v", i, err)
		}
		if d := e.sleeps.Take(); len(d) != 0 {
			t.Fatalf("alice's login %d from her known-good address waited %v for others' failures", i, d)
		}
	}
	e.login("bob", "stale password again", IMAP, office)
	if d := e.sleeps.Take(); len(d) != 1 || d[0] < e.s.opts.Limits.SourceDelay {
		t.Fatalf("bob's next failure from the office: delays %v, want one of at least %v", d, e.s.opts.Limits.SourceDelay)
	}
	if _, err := e.login("bob", goodPassword, IMAP, "198.51.100.3"); err != nil {
		t.Fatal(err)
	}
	if d := e.sleeps.Take(); len(d) != 0 {
		t.Fatalf("bob from elsewhere slowed: %v", d)
	}
}

// TestA1_AppPasswordsOverBudget: while the account budget is spent, the
// user's app password logs in from anywhere without waiting; a wrong
// app-password-shaped secret is throttled and never checked as an account
// password, so an account password of 24 letters is not guessable past
// the budget either.
func TestA1_AppPasswordsOverBudget(t *testing.T) {
	const letters = "qwertyuiopasdfghjklzxcvb" // 24 letters: app-password shape
	e := newTestStore(t)
	if _, err := e.s.CreateUser(bg, NewUser{Name: "dave", Password: letters}); err != nil {
		t.Fatal(err)
	}
	_, app := e.addAppPassword(t, "dave")
	if _, err := e.login("dave", letters, IMAP, "192.0.2.1"); err != nil {
		t.Fatalf("24-letter account password within the budget: %v", err)
	}
	var g guessTally
	for i := range 150 {
		guess := []byte(letters)
		guess[i%24] = 'a' + (guess[i%24]-'a'+1+byte(i/24))%26 // never the right letter
		g.guess(t, e, "dave", string(guess), IMAP, fmt.Sprintf("10.2.0.%d", i+1))
	}
	budget := e.s.opts.Limits.UserBudget
	t.Logf("%d app-password-shaped guesses: %d verified as the account password, %d throttled (budget %d)",
		g.guesses, g.verified, g.throttled, budget)
	if g.verified != budget {
		t.Fatalf("%d verified, want %d", g.verified, budget)
	}
	for _, src := range []string{"10.2.0.7", "198.51.100.77"} {
		t.Run("right account password from "+src, func(t *testing.T) {
			assertRefusedUnverified(t, e, "dave", letters, src)
		})
		t.Run("app password from "+src, func(t *testing.T) {
			e.sleeps.Take()
			g, err := e.login("dave", app, IMAP, src)
			if err != nil || g.AppPassID == "" {
				t.Fatalf("app password over budget: %+v, %v", g, err)
			}
			if d := e.sleeps.Take(); len(d) != 0 {
				t.Fatalf("app password waited %v", d)
			}
		})
	}
}
