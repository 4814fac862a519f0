package admin

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

func signInBody(user, pw string) map[string]string {
	return map[string]string{"username": user, "password": pw}
}

// answer is what a client can observe of a failure: status, headers
// (without Date) and body.
func answer(r *resp) string {
	h := r.header.Clone()
	h.Del("Date")
	return fmt.Sprintf("%d %v %s", r.code, h, r.body)
}

// TestA9_WebSignInNoOracle: unknown user, wrong password, disabled user,
// an app password, a malformed name, an overlong password and a throttled
// attempt all get byte-identical answers and no cookie; likewise every
// failure of the second step.
func TestA9_WebSignInNoOracle(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	e.user("dora", "dora-password", "")
	if err := e.st.SetDisabled(e.ctx(), "dora", true); err != nil {
		t.Fatal(err)
	}
	_, appPw, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "mail"})
	if err != nil {
		t.Fatal(err)
	}
	e.user("carol", "carol-password", "")
	for i := range 101 { // carol's account budget is spent
		c := e.client()
		c.remote = fmt.Sprintf("203.0.113.%d:1000", i%50)
		c.do("POST", "/api/v1/session", signInBody("carol", fmt.Sprintf("guess-%d", i)))
	}
	cases := map[string]map[string]string{
		"unknown user":      signInBody("nobody", "alice-password"),
		"wrong password":    signInBody("alice", "wrong-password"),
		"disabled user":     signInBody("dora", "dora-password"),
		"app password":      signInBody("alice", appPw),
		"bad username":      signInBody("al\nice", "alice-password"),
		"overlong password": signInBody("alice", string(make([]byte, 2000))),
		"throttled":         signInBody("carol", "carol-password"),
	}
	var want, first string
	for name, body := range cases {
		c := e.client()
		c.remote = "198.51.100.1:999"
		r := c.do("POST", "/api/v1/session", body)
		if c.cookie != "" {
			t.Errorf("%s: a cookie was set", name)
		}
		got := answer(r)
		if want == "" {
			want, first = got, name
			if r.code != http.StatusUnauthorized {
				t.Fatalf("%s: %s", name, got)
			}
		} else if got != want {
			t.Errorf("%s answers\n  %s\nbut %s answers\n  %s", name, got, first, want)
		}
	}
	e.st.FlushAudit()
	if evs, _, _ := e.st.QueryAudit(bg, authstore.AuditFilter{User: "carol"}, 1); len(evs) != 1 || evs[0].Result != "throttled" {
		t.Errorf("carol's last attempt was not throttled: %+v", evs)
	}

	secret := e.totpUser("alice")
	c := e.client()
	c.must(200, "POST", "/api/v1/session", signInBody("alice", "alice-password"))
	used := e.code(secret)
	ok := *c
	ok.must(200, "POST", "/api/v1/session/second-factor", map[string]string{"code": used})
	c.must(200, "POST", "/api/v1/session", signInBody("alice", "alice-password"))
	for _, code := range []string{"000000", used, "12345", "1234 5678 9012", "not a code"} {
		if got := answer(c.do("POST", "/api/v1/session/second-factor", map[string]string{"code": code})); got != want {
			t.Errorf("second step with %q answers %s, want %s", code, got, want)
		}
	}
}

// TestA1_WebSharesTheAccountBudget: wrong passwords over IMAP and the
// web from many sources spend one budget; past it the right password is
// refused on the web too, while the user's known-good source still signs in.
func TestA1_WebSharesTheAccountBudget(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	home := e.client()
	home.remote = "192.0.2.77:4000"
	home.signIn("alice", "alice-password", "")
	for i := range 150 {
		src := fmt.Sprintf("203.0.113.%d", i%30)
		pw := fmt.Sprintf("guess-%d", i)
		if i%2 == 0 {
			_, err := e.st.Authenticate(bg, authstore.Attempt{Protocol: authstore.IMAP, Username: "alice", Secret: pw,
				Source: mustAddr(src + ":143").Addr()})
			if err == nil {
				t.Fatal("a guess succeeded")
			}
			continue
		}
		c := e.client()
		c.remote = src + ":5000"
		c.must(401, "POST", "/api/v1/session", signInBody("alice", pw))
	}
	c := e.client()
	c.remote = "198.51.100.9:5000"
	c.must(401, "POST", "/api/v1/session", signInBody("alice", "alice-password"))
	if _, err := e.st.Authenticate(bg, authstore.Attempt{Protocol: authstore.IMAP, Username: "alice", Secret: "alice-password",
		Source: mustAddr("198.51.100.9:143").Addr()}); err == nil {
		t.Error("IMAP accepted the right password past the budget")
	}
	again := e.client()
	again.remote = home.remote
	again.must(200, "POST", "/api/v1/session", signInBody("alice", "alice-password"))
}

// TestA2_WebSignInSlowsASource: after five failures from one address
// each answer to it waits at least 2 s; another address does not wait.
func TestA2_WebSignInSlowsASource(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	e.user("bob", "bob-password", "")
	c := e.client()
	c.remote = "203.0.113.5:1000"
	for i := range 5 {
		c.must(401, "POST", "/api/v1/session", signInBody("alice", fmt.Sprintf("guess-%d", i)))
	}
	e.sleeps.Take()
	c.must(401, "POST", "/api/v1/session", signInBody("alice", "guess-5"))
	if s := e.sleeps.Take(); len(s) != 1 || s[0] < 2*time.Second {
		t.Errorf("sixth failure slept %v, want ≥2s", s)
	}
	// The re-verification is charged to the same limiter.
	other := e.client()
	other.remote = "198.51.100.20:1000"
	other.signIn("bob", "bob-password", "")
	if s := e.sleeps.Take(); len(s) != 0 {
		t.Errorf("another source slept %v", s)
	}
	for i := range 6 {
		other.must(403, "POST", "/api/v1/session/reauth", map[string]string{"password": fmt.Sprintf("guess-%d", i)})
	}
	if s := e.sleeps.Take(); len(s) == 0 || s[len(s)-1] < 2*time.Second {
		t.Errorf("re-verification failures slept %v, want ≥2s at the end", s)
	}
}

// TestA3_WebSignInChargedBeforeVerify: many concurrent guesses against a
// budget of 10 verify at most 10 passwords (the rest are throttled before
// any verification).
func TestA3_WebSignInChargedBeforeVerify(t *testing.T) {
	e := newEnv(t, func(o *authstore.Options, _ *Config) { o.Limits = authstore.Limits{UserBudget: 10, PairBudget: 10} })
	e.user("alice", "alice-password", "")
	before := e.auditCount()
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Go(func() {
			c := e.client()
			c.remote = fmt.Sprintf("203.0.%d.%d:1000", i/250, i%250)
			c.do("POST", "/api/v1/session", signInBody("alice", fmt.Sprintf("guess-%d", i)))
		})
	}
	wg.Wait()
	denied, throttled := 0, 0
	for _, ev := range e.eventsSince(before) {
		switch ev.Result {
		case "denied":
			denied++
		case "throttled":
			throttled++
		}
	}
	if denied > 10 || denied+throttled != 200 {
		t.Errorf("%d verified and denied, %d throttled; want at most 10 verified", denied, throttled)
	}
}

// sleepGate is the store's sleep that, once shut, holds every sleeper until
// it opens, counting them: a request that sleeps is past the limiter and
// about to verify.
type sleepGate struct {
	mu      sync.Mutex
	shut    bool
	open    chan struct{}
	entered chan struct{}
}

func (g *sleepGate) sleep(ctx context.Context, _ time.Duration) error {
	g.mu.Lock()
	shut := g.shut
	g.mu.Unlock()
	if shut {
		g.entered <- struct{}{}
		<-g.open
	}
	return ctx.Err()
}

// holdBurst sends n requests at once (send) while g holds the store's
// delays, and waits until each either reached its delay (inFlight: past
// the limiter, about to verify) or was answered (refused). release lets
// the held ones finish and waits for them.
func holdBurst[T any](g *sleepGate, n int, send func(i int) T) (inFlight int, refused []T, release func()) {
	answered := make(chan T, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { answered <- send(i) })
	}
	for inFlight+len(refused) < n {
		select {
		case <-g.entered:
			inFlight++
		case a := <-answered:
			refused = append(refused, a)
		}
	}
	return inFlight, refused, func() {
		close(g.open)
		wg.Wait()
	}
}

// TestA2_ParallelWebSignInsFromOneAddress: 200 parallel wrong sign-ins
// from one address, once it is past its free failures so that each
// admitted one waits its delay first, while the delays are held: at most
// maxGuessesPerSource are in flight, the rest are refused 429 with
// Retry-After without being verified; once released, only those few were
// verified. Another address signs in meanwhile.
func TestA2_ParallelWebSignInsFromOneAddress(t *testing.T) {
	const n = 200
	g := &sleepGate{open: make(chan struct{}), entered: make(chan struct{}, n)}
	e := newEnv(t, func(o *authstore.Options, _ *Config) { o.Sleep = g.sleep })
	e.user("alice", "alice-password", "")
	e.user("bob", "bob-password", "")
	attacker := func() *client {
		c := e.client()
		c.remote = "203.0.113.5:1000"
		return c
	}
	for i := range 5 {
		attacker().must(401, "POST", "/api/v1/session", signInBody("alice", fmt.Sprintf("guess-%d", i)))
	}
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
	before := e.auditCount()

	inFlight, refused, release := holdBurst(g, n, func(i int) *resp {
		return attacker().do("POST", "/api/v1/session", signInBody("alice", fmt.Sprintf("burst-%d", i)))
	})
	for _, r := range refused {
		if r.code != 429 || r.header.Get("Retry-After") == "" {
			t.Errorf("an answer while the delays are held: %d %v %s", r.code, r.header, r.body)
		}
	}
	if inFlight > maxGuessesPerSource {
		t.Errorf("%d sign-ins from one address in flight at once, want at most %d", inFlight, maxGuessesPerSource)
	}
	other := e.client()
	other.remote = "198.51.100.20:1000"
	other.must(200, "POST", "/api/v1/session", signInBody("bob", "bob-password"))
	release()
	verified := 0
	for _, ev := range e.eventsSince(before) {
		if ev.User == "alice" && ev.Result == "denied" {
			verified++
		}
	}
	if verified != inFlight || verified > maxGuessesPerSource {
		t.Errorf("%d guesses verified, %d were in flight; want at most %d", verified, inFlight, maxGuessesPerSource)
	}
}
