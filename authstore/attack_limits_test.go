package authstore

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// TestA1_AccountBudget: 150 wrong logins for one user from 30 sources over
// every protocol → the 101st and later refused even with the right
// secret; the user's own earlier-good source and app passwords still log in.
func TestA1_AccountBudget(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, app := e.addAppPassword(t, "alice")
	const home = "203.0.113.1"
	if _, err := e.login("alice", app, IMAP, home); err != nil {
		t.Fatal(err)
	}
	protos := []Protocol{IMAP, POP3, CalDAV, CardDAV, Web}
	throttledFrom := 0
	for i := range 150 {
		src := fmt.Sprintf("10.0.0.%d", i%30+1)
		_, err := e.login("alice", fmt.Sprintf("guess %d", i), protos[i%len(protos)], src)
		if !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("guess %d: %v", i, err)
		}
		if errors.Is(err, ErrThrottled) && throttledFrom == 0 {
			throttledFrom = i + 1
		}
		if throttledFrom != 0 && !errors.Is(err, ErrThrottled) {
			t.Fatalf("guess %d not throttled after guess %d was", i+1, throttledFrom)
		}
	}
	if throttledFrom != 101 {
		t.Fatalf("first throttled guess #%d, want #101", throttledFrom)
	}
	tests := []struct {
		name   string
		secret string
		src    string
		wantOK bool
	}{
		{"right password from an attacking source", goodPassword, "10.0.0.7", false},
		{"right app password from an attacking source", app, "10.0.0.7", true},
		{"right password from a new source", goodPassword, "198.51.100.1", false},
		{"right app password from a new source", app, "198.51.100.2", true},
		{"right app password from the known-good source", app, home, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.kdfRuns()
			_, err := e.login("alice", tc.secret, IMAP, tc.src)
			if tc.wantOK {
				if err != nil {
					t.Fatalf("known-good source locked out: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrThrottled) {
				t.Fatalf("err = %v, want ErrThrottled", err)
			}
			if e.kdfRuns() != before {
				t.Fatal("a throttled attempt was verified")
			}
		})
	}
}

// TestA2_SourceDelay: after SourceFree failures a source's answers slow
// down (2 s doubling to 15 s); a stale wrong secret does not escalate;
// other users and sources are unaffected.
func TestA2_SourceDelay(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	const src = "192.0.2.66"
	fail := func(secret, from string) []time.Duration {
		t.Helper()
		if _, err := e.login("alice", secret, IMAP, from); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("wrong secret: %v", err)
		}
		return e.sleeps.Take()
	}
	steps := []struct {
		name   string
		secret string
		from   string
		want   time.Duration // 0: no delay
	}{
		{"free 1", "w1", src, 0}, {"free 2", "w2", src, 0}, {"free 3", "w3", src, 0},
		{"free 4", "w4", src, 0}, {"free 5", "w5", src, 0},
		{"6th", "w6", src, 2 * time.Second},
		{"same wrong secret again", "w6", src, 2 * time.Second},
		{"and again", "w6", src, 2 * time.Second},
		{"7th", "w7", src, 4 * time.Second},
		{"8th", "w8", src, 8 * time.Second},
		{"9th, capped", "w9", src, 15 * time.Second},
		{"10th, capped", "w10", src, 15 * time.Second},
		{"first failure from an IPv6 host", "v1", "2001:db8::1", 0},
		{"other source", "x1", "198.51.100.9", 0},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			got := fail(st.secret, st.from)
			if st.want == 0 {
				if len(got) != 0 {
					t.Fatalf("delays %v, want none", got)
				}
				return
			}
			if len(got) != 1 || got[0] != st.want {
				t.Fatalf("delays %v, want [%v]", got, st.want)
			}
		})
	}
	t.Run("IPv6 /64 grouping", func(t *testing.T) {
		for i := range 4 {
			if got := fail(fmt.Sprint("v6 ", i), fmt.Sprintf("2001:db8::%x", i+2)); len(got) != 0 {
				t.Fatalf("failure %d from the /64 slowed: %v", i+2, got)
			}
		}
		if got := fail("v6 x", "2001:db8::ff"); len(got) != 1 || got[0] != 2*time.Second {
			t.Fatalf("6th failure from one /64 (other hosts): delays %v, want [2s]", got)
		}
		if got := fail("v6 y", "2001:db8:0:1::1"); len(got) != 0 {
			t.Fatalf("next /64 slowed: %v", got)
		}
	})
	t.Run("other user, other source", func(t *testing.T) {
		if _, err := e.login("bob", goodPassword, IMAP, "198.51.100.10"); err != nil {
			t.Fatal(err)
		}
		if got := e.sleeps.Take(); len(got) != 0 {
			t.Fatalf("bob slowed: %v", got)
		}
	})
}

// TestA2_ParallelConnectionsQueue: once a source's failures have settled,
// parallel guesses from it book one delay slot after another, so more
// connections do not buy more guesses per second. (Guesses already in
// flight before any failure settled are not slowed: only settled failures
// count, so that correct logins behind one address never slow each other;
// the per-address connection cap bounds that first burst.)
func TestA2_ParallelConnectionsQueue(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{PairBudget: 1000, UserBudget: 1000}))
	frozenSleep(e)
	e.addUser(t, "alice")
	guess := func(wave, n int) {
		countOK(t, n, func(i int) error {
			_, err := e.login("alice", fmt.Sprintf("wave %d guess %d", wave, i), IMAP, "192.0.2.77")
			return err
		})
	}
	guess(1, 50)
	if first := e.sleeps.Take(); len(first) > 45 {
		t.Fatalf("%d of the first 50 guesses delayed; at most 45 can follow 5 free failures", len(first))
	}
	const n = 20
	guess(2, n)
	delays := e.sleeps.Take()
	if len(delays) != n {
		t.Fatalf("%d of %d later guesses delayed, want all", len(delays), n)
	}
	slices.Sort(delays)
	if delays[0] < 2*time.Second {
		t.Fatalf("first delay %v < 2s", delays[0])
	}
	for i := 1; i < len(delays); i++ {
		if gap := delays[i] - delays[i-1]; gap < 2*time.Second {
			t.Fatalf("answers %d and %d only %v apart", i-1, i, gap)
		}
	}
}

// TestA2_StaleSecretHourly: one wrong secret every 60 s for an hour (a
// phone with an old password) is never charged again, even while the same
// address tries many other wrong secrets (the user at the web form behind
// the same NAT). Only the new secrets escalate the delay.
func TestA2_StaleSecretHourly(t *testing.T) {
	tests := []struct {
		name   string
		others int // distinct wrong secrets tried in the first minutes
	}{
		{"alone", 0},
		{"with four others", 4},
		{"with twelve others", 12},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t, withLimits(Limits{SourceMaxDelay: 24 * time.Hour, PairBudget: 50}))
			e.addUser(t, "alice")
			const src = "192.0.2.5"
			e.login("alice", "old password", IMAP, src)
			level := time.Duration(0) // delay earned by the charged failures so far
			for minute := range 60 {
				e.clock.Advance(time.Minute)
				if minute < tc.others {
					e.login("alice", fmt.Sprint("other ", minute), IMAP, src)
					if d := e.sleeps.Take(); len(d) > 0 {
						level = d[0]
					}
				}
				_, err := e.login("alice", "old password", IMAP, src)
				if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled) {
					t.Fatalf("minute %d: %v, want a plain denial", minute, err)
				}
				for _, d := range e.sleeps.Take() {
					if d > level {
						t.Fatalf("minute %d: delay %v escalated beyond %v", minute, d, level)
					}
				}
			}
			if got := e.s.limit.sources[SourcePrefix(addr(src))].failures; got != 1+tc.others {
				t.Fatalf("source charged %d times, want %d", got, 1+tc.others)
			}
		})
	}
}

// TestA3_ChargeBeforeVerify: 5,000 concurrent guesses against a budget of
// L run at most L password verifications, for the account budget (guesses
// from 5,000 sources) and for the account+source budget (guesses from one
// known-good source). Every admitted attempt is held at a barrier, before
// it is verified, until each of the 5,000 has been either admitted or
// refused: no failure can settle while attempts are still being charged,
// so a budget charged only when failures settle would let every guess
// through, every run.
func TestA3_ChargeBeforeVerify(t *testing.T) {
	const budget, guesses = 10, 5000
	tests := []struct {
		name   string
		limits Limits
		source func(i int) string
		home   string // a source made known-good first, if any
	}{
		{"account budget", Limits{UserBudget: budget, PairBudget: guesses, SourceFree: guesses},
			func(i int) string { return fmt.Sprintf("10.%d.%d.1", i/250, i%250) }, ""},
		{"account+source budget", Limits{UserBudget: guesses, PairBudget: budget, SourceFree: guesses},
			func(int) string { return "192.0.2.1" }, "192.0.2.1"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t, withLimits(tc.limits))
			frozenSleep(e)
			e.addUser(t, "alice")
			if tc.home != "" {
				if _, err := e.login("alice", goodPassword, IMAP, tc.home); err != nil {
					t.Fatal(err)
				}
			}
			before := e.kdfRuns()
			var mu sync.Mutex
			var denied, throttled, arrived int
			release := make(chan struct{})
			arrive := func() { // with mu held
				if arrived++; arrived == guesses {
					close(release)
				}
			}
			countOK(t, guesses, func(i int) error {
				_, err := e.s.Authenticate(bg, Attempt{Protocol: IMAP, Username: "alice", Secret: fmt.Sprint("guess ", i),
					Source: addr(tc.source(i)), Admitted: func() {
						mu.Lock()
						arrive()
						mu.Unlock()
						<-release
					}})
				mu.Lock()
				defer mu.Unlock()
				if errors.Is(err, ErrThrottled) {
					throttled++
					arrive()
				} else if err != nil {
					denied++
				}
				return err
			})
			runs := e.kdfRuns() - before
			t.Logf("%d concurrent guesses, budget %d: %d verified, %d throttled", guesses, budget, runs, throttled)
			if runs > budget || denied > budget {
				t.Fatalf("%d verifications and %d plain denials for a budget of %d", runs, denied, budget)
			}
			if runs == 0 || denied+throttled != guesses {
				t.Fatalf("runs %d, denied %d, throttled %d of %d", runs, denied, throttled, guesses)
			}
		})
	}
}

// TestA9_NoOracle: every failure class gives the same error value and
// text, and costs the same one KDF run (throttled costs none: it waits).
func TestA9_NoOracle(t *testing.T) {
	f := newDecisionFixture(t)
	e := f.e
	e.login("nobody", "warm up the dummy hash", IMAP, "192.0.2.200")
	cases := []struct {
		name   string
		user   string
		secret string
		proto  Protocol
	}{
		{"unknown user", "nobody", goodPassword, IMAP},
		{"invalid username", "bad\x00name", goodPassword, IMAP},
		{"wrong secret", "alice", "wrong password", IMAP},
		{"wrong app password", "alice", "abcd efgh ijkl mnop qrst uvwx", IMAP},
		{"disabled user", "off", goodPassword, IMAP},
		{"disabled user's app password", "off", f.offApp, IMAP},
		{"revoked app password", "alice", f.revoked, IMAP},
		{"expired app password", "alice", f.expired, IMAP},
		{"app password out of scope", "alice", f.imapOnly, CalDAV},
		{"account password of an app-password-only user", "mfa", goodPassword, POP3},
		{"user without a password", "nopw", goodPassword, IMAP},
	}
	want := ErrUnauthorized.Error()
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := e.kdfRuns()
			_, err := e.login(tc.user, tc.secret, tc.proto, fmt.Sprintf("192.0.2.%d", i+1))
			if err != ErrUnauthorized || err.Error() != want {
				t.Fatalf("err = %#v (%q), want ErrUnauthorized itself", err, err)
			}
			if runs := e.kdfRuns() - before; runs != 1 {
				t.Fatalf("%d KDF runs, want exactly 1 like every other failure", runs)
			}
		})
	}
	t.Run("throttled", func(t *testing.T) {
		th := newTestStore(t, withLimits(Limits{UserBudget: 1}))
		th.addUser(t, "alice")
		th.login("alice", "wrong 1", IMAP, "192.0.2.1")
		_, err := th.login("alice", goodPassword, IMAP, "192.0.2.2")
		if !errors.Is(err, ErrThrottled) || !errors.Is(err, ErrUnauthorized) || err.Error() != want {
			t.Fatalf("err = %#v (%q)", err, err)
		}
	})
	t.Run("second factor", func(t *testing.T) {
		for _, c := range [][2]string{{"nobody", "123456"}, {"alice", "123456"}, {"mfa", "000000000000"}, {"mfa", "x"}} {
			_, err := e.second(c[0], c[1], "192.0.2.99")
			if err != ErrUnauthorized {
				t.Fatalf("%v: err = %#v", c, err)
			}
		}
	})
}

// TestA9_DummyVerification: an unknown user costs one KDF run with the
// same parameters a real account's hash uses (real argon2id costs here).
func TestA9_DummyVerification(t *testing.T) {
	e := newTestStore(t, withKDF(defaultKDF))
	e.addUser(t, "alice")
	e.login("nobody", "x", IMAP, "192.0.2.1") // builds the dummy hash once
	before := e.kdfRuns()
	if _, err := e.login("nobody", goodPassword, IMAP, "192.0.2.1"); err != ErrUnauthorized {
		t.Fatalf("err = %v", err)
	}
	if runs := e.kdfRuns() - before; runs != 1 {
		t.Fatalf("unknown user cost %d KDF runs, want 1", runs)
	}
	params := func(phc string) string { return strings.Split(phc, "$")[3] }
	real := e.userRecord(t, "alice").PasswordHash
	if got, want := params(e.s.dummyHash), params(real); got != want || want != "m=19456,t=2,p=1" {
		t.Fatalf("dummy hash params %s, account hash params %s, want m=19456,t=2,p=1", got, want)
	}
}

// TestA11_LongPassword: a 10 MB password is refused before any hashing.
func TestA11_LongPassword(t *testing.T) {
	e := newTestStore(t, withKDF(defaultKDF))
	e.addUser(t, "alice")
	huge := strings.Repeat("p", 10<<20)
	tests := []struct {
		name string
		do   func() error
		want error
	}{
		{"login", func() error { _, err := e.login("alice", huge, IMAP, "192.0.2.1"); return err }, ErrUnauthorized},
		{"login, web", func() error { _, err := e.login("alice", huge, Web, "192.0.2.1"); return err }, ErrUnauthorized},
		{"login, unknown user", func() error { _, err := e.login("nobody", huge, IMAP, "192.0.2.1"); return err }, ErrUnauthorized},
		{"second factor", func() error { _, err := e.second("alice", huge, "192.0.2.1"); return err }, ErrUnauthorized},
		{"set password", func() error { return e.s.SetPassword(bg, "alice", huge, false) }, ErrInvalid},
		{"create user", func() error {
			_, err := e.s.CreateUser(bg, NewUser{Name: "bob", Password: huge})
			return err
		}, ErrInvalid},
		{"just over the cap", func() error {
			return e.s.SetPassword(bg, "alice", huge[:maxPasswordBytes+1], false)
		}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := e.kdfRuns()
			if err := tc.do(); !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			if runs := e.kdfRuns() - before; runs != 0 {
				t.Fatalf("%d KDF runs for an oversized secret", runs)
			}
		})
	}
}

// TestA11_ConcurrentVerificationsBounded: 200 logins at once never run
// more KDFs at a time than there are cores, so memory stays bounded
// (each run holds Memory KiB).
func TestA11_ConcurrentVerificationsBounded(t *testing.T) {
	e := newTestStore(t, withKDF(KDFParams{Memory: 1024, Time: 1, Threads: 1}))
	e.addUser(t, "alice")
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			e.login("alice", goodPassword, IMAP, fmt.Sprintf("198.51.100.%d", i%250))
		})
	}
	wg.Wait()
	peak, limit := e.s.hash.peak.Load(), int64(runtime.GOMAXPROCS(0))
	if peak < 1 || peak > limit {
		t.Fatalf("peak concurrent KDF runs %d, limit %d", peak, limit)
	}
	// Logins charged while others were still in flight may be refused
	// by the account budget (A3); enough ran to test the bound.
	if runs := e.kdfRuns(); runs < 10*limit {
		t.Fatalf("only %d KDF runs for 200 logins", runs)
	}
}

func TestA12_CanonicalUsername(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"alice", "alice"}, {"ALICE", "alice"}, {"ａｌｉｃｅ", "alice"}, {" Alice ", "alice"},
		{"Straße", "strasse"}, {"ﬀ", "ff"},
		// Cherokee folds to the capitals, whichever case is typed.
		{"Ꭰ", "Ꭰ"}, {"ꭰ", "Ꭰ"}, {"ᏸ", "Ᏸ"}, {"Ᏸ", "Ᏸ"},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := CanonicalUsername(tc.in)
			if err != nil || got != tc.want {
				t.Fatalf("CanonicalUsername(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

// TestA12_OneBudgetPerCanonicalName: spellings of one name share a budget.
func TestA12_OneBudgetPerCanonicalName(t *testing.T) {
	variants := []string{"alice", "ALICE", "ａｌｉｃｅ", " Alice "}
	e := newTestStore(t, withLimits(Limits{UserBudget: len(variants), PairBudget: 100}))
	e.addUser(t, "alice")
	for i, v := range variants {
		t.Run(fmt.Sprintf("%q logs in", v), func(t *testing.T) {
			g, err := e.login(v, goodPassword, IMAP, fmt.Sprintf("192.0.2.%d", i+1))
			if err != nil || g.Username != "alice" {
				t.Fatalf("grant %+v, %v", g, err)
			}
		})
	}
	for i, v := range variants {
		_, err := e.login(v, fmt.Sprint("wrong ", i), IMAP, fmt.Sprintf("198.51.100.%d", i+1))
		if !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled) {
			t.Fatalf("failure %d as %q: %v", i, v, err)
		}
	}
	for _, v := range variants {
		t.Run(fmt.Sprintf("%q throttled", v), func(t *testing.T) {
			if _, err := e.login(v, goodPassword, IMAP, "198.51.100.200"); !errors.Is(err, ErrThrottled) {
				t.Fatalf("err = %v, want ErrThrottled", err)
			}
		})
	}
	e.s.FlushAudit()
	evs, _ := e.s.AuditTail(bg, 100)
	for _, ev := range evs {
		if ev.Kind == "login" && ev.User != "alice" {
			t.Fatalf("audit logged user %q, want the canonical name", ev.User)
		}
	}
}

// TestA2_CorrectLoginsBehindOneAddressNotSlowed: many mail apps behind one
// address (an office NAT, a webmail host) logging in at once, all with the
// right secrets, are never delayed: only settled failures slow a source.
func TestA2_CorrectLoginsBehindOneAddressNotSlowed(t *testing.T) {
	e := newTestStore(t)
	secrets := map[string]string{}
	for i := range 20 {
		name := fmt.Sprintf("user%02d", i)
		e.addUser(t, name)
		_, secrets[name] = e.addAppPassword(t, name)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 400)
	for round := range 20 {
		for name, secret := range secrets {
			wg.Go(func() {
				if _, err := e.login(name, secret, IMAP, "203.0.113.80"); err != nil {
					errs <- fmt.Errorf("round %d %s: %w", round, name, err)
				}
			})
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if d := e.sleeps.Take(); len(d) != 0 {
		t.Fatalf("correct logins behind one address were delayed: %v", d)
	}
	// The same address guessing is still slowed once its failures settle.
	for i := range 6 {
		e.login("user00", fmt.Sprintf("wrong guess %d", i), IMAP, "203.0.113.80")
	}
	if d := e.sleeps.Take(); len(d) != 1 || d[0] != 2*time.Second {
		t.Fatalf("delays after six wrong guesses: %v, want [2s]", d)
	}
}
