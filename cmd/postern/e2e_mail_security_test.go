package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/certs"
)

// The failure answers postern gives for every credential problem, as the
// e2e configuration's public_url makes them.
const (
	imapFailure = "a NO [AUTHENTICATIONFAILED] Authentication failed. Mail apps need an app password: https://mail.example.org/account\r\n"
	pop3Failure = "-ERR [AUTH] Authentication failed. Mail apps need an app password: https://mail.example.org/account\r\n"
	imapTempErr = "a NO [UNAVAILABLE] Temporary failure, try again later\r\n"
	pop3TempErr = "-ERR [SYS/TEMP] Temporary failure, try again later\r\n"
)

// TestA8_NoSecondFactorBypass: a user with two-step verification gets in
// over IMAP and POP3 only with an app password, and turning organisation
// enforcement on ends live account-password sessions within a second.
func TestA8_NoSecondFactorBypass(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice", "bob")
	e := startE2E(t, peer, e2eOptions{users: []string{"alice", "bob"}, totp: []string{"alice"}})
	alice, bob := e.account("alice"), e.account("bob")

	t.Run("account password of a two-step user", func(t *testing.T) {
		if got := e.imapTry(t, "", alice.name, alice.password); got != imapFailure {
			t.Errorf("IMAP: %q, want %q", got, imapFailure)
		}
		if got := e.pop3Try(t, "", alice.name, alice.password); got != pop3Failure {
			t.Errorf("POP3: %q, want %q", got, pop3Failure)
		}
	})

	t.Run("enforcement ends account-password sessions", func(t *testing.T) {
		pwIMAP, rec := e.dialIMAP(t, "", nil)
		startIdle(t, pwIMAP, bob.name, bob.password)
		appIMAP, _ := e.dialIMAP(t, "", nil)
		appIdle := startIdle(t, appIMAP, bob.name, bob.appPassword)
		pwPOP3 := e.dialWire(t, "pop3s", "")
		pwPOP3.expect("+OK")
		if got := pwPOP3.pop3Login(bob.name, bob.password); !strings.HasPrefix(got, "+OK") {
			t.Fatalf("POP3 account-password login before enforcement: %q", got)
		}

		start := time.Now()
		if err := e.g.store.SetPolicy(e2eCtx(), authstore.Policy{MFARequired: true}); err != nil {
			t.Fatalf("SetPolicy: %v", err)
		}
		waitClosed(t, pwIMAP, start, kickLimit)
		// The account password no longer works for mail: RFC 3206's AUTH.
		want := "-ERR [AUTH] two-step verification is now required"
		if got := pwPOP3.closedWithin(start, kickLimit); !strings.HasPrefix(got, want) {
			t.Errorf("POP3 session ended with %q, want %s…", got, want)
		}
		if !strings.Contains(rec.String(), "\r\n* BYE ") {
			t.Errorf("the IMAP session got no BYE:\n%s", rec.String())
		}
		// The app-password session is not an account-password session.
		stopIdle(t, appIMAP, appIdle)

		if got := e.imapTry(t, "", bob.name, bob.password); got != imapFailure {
			t.Errorf("IMAP account password after enforcement: %q, want %q", got, imapFailure)
		}
		if got := e.pop3Try(t, "", bob.name, bob.password); got != pop3Failure {
			t.Errorf("POP3 account password after enforcement: %q, want %q", got, pop3Failure)
		}
		if got := e.imapTry(t, "", bob.name, bob.appPassword); !strings.HasPrefix(got, "a OK") {
			t.Errorf("IMAP app password after enforcement: %q", got)
		}
	})
}

// startIdle logs c in, selects INBOX and starts IDLE.
func startIdle(t *testing.T, c *imapclient.Client, user, secret string) *imapclient.IdleCommand {
	t.Helper()
	if err := c.Login(user, secret).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	return idle
}

// stopIdle ends IDLE and proves with NOOP that the session still works.
func stopIdle(t *testing.T, c *imapclient.Client, idle *imapclient.IdleCommand) {
	t.Helper()
	if err := idle.Close(); err != nil {
		t.Fatalf("DONE: %v", err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: the session was ended: %v", err)
	}
}

// TestA9_IdenticalFailureAnswers: every credential problem gets the same
// bytes on the wire, so an answer tells an attacker nothing.
func TestA9_IdenticalFailureAnswers(t *testing.T) {
	t.Parallel()
	users := []string{"alice", "bob", "carol"}
	peer := startPeer(t, users...)
	e := startE2E(t, peer, e2eOptions{users: users, totp: []string{"alice"}})
	alice, bob, carol := e.account("alice"), e.account("bob"), e.account("carol")
	revokedID, revoked := e.newAppPassword(t, bob.name)
	if err := e.g.store.RevokeAppPassword(e2eCtx(), bob.name, revokedID); err != nil {
		t.Fatal(err)
	}
	if err := e.g.store.SetDisabled(e2eCtx(), carol.name, true); err != nil {
		t.Fatal(err)
	}
	// The same connection code logs in with a good credential.
	if got := e.imapTry(t, "", bob.name, bob.appPassword); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("control login: %q", got)
	}

	tests := []struct{ name, user, secret string }{
		{"unknown user", "mallory", bob.appPassword},
		{"wrong password", bob.name, "Wrong-" + bob.password},
		{"another user's app password", alice.name, bob.appPassword},
		{"disabled user", carol.name, carol.appPassword},
		{"revoked app password", bob.name, revoked},
		{"account password of a two-step user", alice.name, alice.password},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := e.imapTry(t, "", tt.user, tt.secret); got != imapFailure {
				t.Errorf("IMAP: %q, want %q", got, imapFailure)
			}
			w := e.dialWire(t, "pop3s", "")
			w.expect("+OK")
			w.send("USER " + tt.user)
			if got := w.line(); got != "+OK\r\n" {
				t.Errorf("POP3 USER: %q, want the same +OK for every name", got)
			}
			w.send("PASS " + tt.secret)
			if got := w.line(); got != pop3Failure {
				t.Errorf("POP3 PASS: %q, want %q", got, pop3Failure)
			}
		})
	}
}

// TestA1_AccountFailureBudget: wrong logins over IMAP and POP3 share one
// budget per account; past it even the right account password is refused,
// in the same words, from any new source, while a source that logged in
// before keeps working and the user's app password logs in from anywhere.
// None of those successes reopens the budget.
func TestA1_AccountFailureBudget(t *testing.T) {
	t.Parallel()
	const budget = 10
	peer := startPeer(t, "bob")
	e := startE2E(t, peer, e2eOptions{users: []string{"bob"}, limits: []string{fmt.Sprintf("user_failure_budget = %d", budget)}})
	bob := e.account("bob")
	const good, attacker, fresh = "127.0.0.1", "127.0.0.2", "127.0.0.3"

	try := func(t *testing.T, pop3 bool, src, secret string) (got, failure string) {
		t.Helper()
		if pop3 {
			return e.pop3Try(t, src, bob.name, secret), pop3Failure
		}
		return e.imapTry(t, src, bob.name, secret), imapFailure
	}
	if got, _ := try(t, false, good, bob.password); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("first login from the user's own source: %q", got)
	}
	guess := func(i int, src string) {
		t.Helper()
		// Each guess differs: a repeated wrong secret is not charged again.
		got, want := try(t, i%2 == 1, src, fmt.Sprintf("guess-%02d-%s", i, rand.Text()))
		if got != want {
			t.Fatalf("wrong login %d: %q, want %q", i+1, got, want)
		}
	}
	for i := range budget + 5 {
		guess(i, attacker)
	}
	over := []struct {
		name string
		pop3 bool
		src  string
	}{
		{"IMAP from the guessing source", false, attacker},
		{"POP3 from the guessing source", true, attacker},
		{"IMAP from a new source", false, fresh},
	}
	for _, o := range over {
		if got, want := try(t, o.pop3, o.src, bob.password); got != want {
			t.Errorf("right account password over budget, %s: %q, want the failure %q", o.name, got, want)
		}
	}
	if got, _ := try(t, true, good, bob.password); !strings.HasPrefix(got, "+OK") {
		t.Errorf("the user's earlier-good source over budget: %q, want +OK", got)
	}
	for _, src := range []string{attacker, fresh} {
		if got, _ := try(t, false, src, bob.appPassword); !strings.HasPrefix(got, "a OK") {
			t.Errorf("the user's app password over budget from %s: %q, want a OK", src, got)
		}
	}
	// The successes reopened nothing. (A source where the user's app
	// password logged in is known-good now, held to the account+source
	// budget only: the guess comes from one that is not.)
	guess(budget+5, "127.0.0.4")

	// The first budget guesses were checked and denied; every later attempt
	// from a source without a success was refused unchecked.
	sum := func(result string) float64 {
		return e.metric(t, `postern_logins_total{protocol="imap",result="`+result+`"}`) +
			e.metric(t, `postern_logins_total{protocol="pop3",result="`+result+`"}`)
	}
	if got := sum("denied"); got != budget {
		t.Errorf("denied logins: %v, want %d", got, budget)
	}
	if got, want := sum("throttled"), float64(6+len(over)); got != want {
		t.Errorf("throttled logins: %v, want %v", got, want)
	}
}

// TestP10_RevocationEndsSessions: a credential change ends the live IMAP
// and POP3 sessions it invalidates within a second (IMAP with BYE), and
// only those.
func TestP10_RevocationEndsSessions(t *testing.T) {
	t.Parallel()
	users := []string{"p10a", "p10b", "p10c", "p10d", "p10e"}
	peer := startPeer(t, users...)
	e := startE2E(t, peer, e2eOptions{users: users, totp: []string{"p10d"}})
	st, ctx := e.g.store, e2eCtx()

	tests := []struct {
		name   string
		user   string
		change func(a *e2eAccount) error
		ends   bool // the app-password sessions end
		// reuse: the app password still logs in afterwards.
		reuse bool
	}{
		{"app password revoked", "p10a", func(a *e2eAccount) error {
			return st.RevokeAppPassword(ctx, a.name, a.appPassID)
		}, true, false},
		{"password changed, app passwords revoked", "p10b", func(a *e2eAccount) error {
			return st.SetPassword(ctx, a.name, rand.Text(), true)
		}, true, false},
		{"user disabled", "p10c", func(a *e2eAccount) error {
			return st.SetDisabled(ctx, a.name, true)
		}, true, false},
		// A reset clears the factor and its codes, not the app passwords;
		// the sessions end so that every device must log in again.
		{"two-step reset", "p10d", func(a *e2eAccount) error {
			return st.ResetMFA(ctx, a.name)
		}, true, true},
		{"password changed, app passwords kept", "p10e", func(a *e2eAccount) error {
			return st.SetPassword(ctx, a.name, rand.Text(), false)
		}, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := e.account(tt.user)
			c, rec := e.dialIMAP(t, "", nil)
			idle := startIdle(t, c, a.name, a.appPassword)
			pop := e.dialWire(t, "pop3s", "")
			pop.expect("+OK")
			if got := pop.pop3Login(a.name, a.appPassword); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("POP3 login: %q", got)
			}

			start := time.Now()
			if err := tt.change(a); err != nil {
				t.Fatalf("change: %v", err)
			}
			if tt.ends {
				waitClosed(t, c, start, kickLimit)
				pop.closedWithin(start, kickLimit)
				if !strings.Contains(rec.String(), "\r\n* BYE ") {
					t.Errorf("the IMAP client got no BYE:\n%s", rec.String())
				}
			} else {
				stopIdle(t, c, idle)
				pop.send("NOOP")
				pop.expect("+OK")
			}

			got := e.imapTry(t, "", a.name, a.appPassword)
			if tt.reuse != strings.HasPrefix(got, "a OK") {
				t.Errorf("next login with the app password: %q, want success %v", got, tt.reuse)
			}
			if !tt.reuse && got != imapFailure {
				t.Errorf("next login: %q, want %q", got, imapFailure)
			}
		})
	}
}

// TestP6_UpstreamFailureIsUnavailable: when Dovecot cannot be reached or
// cannot be trusted, clients are told to try later, not that their
// password is wrong, and nobody's failure budget pays for the outage.
func TestP6_UpstreamFailureIsUnavailable(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "bob")

	t.Run("upstream down", func(t *testing.T) {
		imapUp, pop3Up := newSwitchedUpstream(t, peer.IMAPAddr), newSwitchedUpstream(t, peer.POP3Addr)
		// A budget of one: a single charged failure would lock bob out of
		// every source that never logged in.
		e := startE2E(t, peer, e2eOptions{users: []string{"bob"}, limits: []string{"user_failure_budget = 1"},
			imapUpstream: imapUp.addr, pop3Upstream: pop3Up.addr})
		bob := e.account("bob")
		imapUp.off()
		pop3Up.off()
		for range 3 {
			if got := e.imapTry(t, "127.0.0.2", bob.name, bob.appPassword); got != imapTempErr {
				t.Errorf("IMAP with the upstream down: %q, want %q", got, imapTempErr)
			}
			if got := e.pop3Try(t, "127.0.0.2", bob.name, bob.appPassword); got != pop3TempErr {
				t.Errorf("POP3 with the upstream down: %q, want %q", got, pop3TempErr)
			}
		}
		if got := e.metric(t, `postern_logins_total{protocol="imap",result="upstream_error"}`); got != 3 {
			t.Errorf("IMAP logins counted as upstream errors: %v, want 3", got)
		}
		imapUp.on()
		pop3Up.on()
		if got := e.imapTry(t, "127.0.0.3", bob.name, bob.appPassword); !strings.HasPrefix(got, "a OK") {
			t.Errorf("IMAP once the upstream is back: %q", got)
		}
		if got := e.pop3Try(t, "127.0.0.3", bob.name, bob.appPassword); !strings.HasPrefix(got, "+OK") {
			t.Errorf("POP3 once the upstream is back: %q", got)
		}
	})

	t.Run("upstream certificate not trusted", func(t *testing.T) {
		other, err := certs.SelfSigned(filepath.Join(t.TempDir(), "other"))
		if err != nil {
			t.Fatal(err)
		}
		e := startE2E(t, peer, e2eOptions{users: []string{"bob"}, caFile: other.CertFile})
		bob := e.account("bob")
		if got := e.imapTry(t, "", bob.name, bob.appPassword); got != imapTempErr {
			t.Errorf("IMAP: %q, want %q", got, imapTempErr)
		}
		if got := e.pop3Try(t, "", bob.name, bob.appPassword); got != pop3TempErr {
			t.Errorf("POP3: %q, want %q", got, pop3TempErr)
		}
		if !strings.Contains(e.logs.String(), "certificate signed by unknown authority") {
			t.Error("the refused upstream certificate is not in the gateway's log")
		}
	})
}

// switchedUpstream relays TCP connections to target while on; while off,
// its port refuses connections, as a stopped server's does.
type switchedUpstream struct {
	t      *testing.T
	addr   string
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	ln    net.Listener
	conns map[net.Conn]struct{}
}

func newSwitchedUpstream(t *testing.T, target string) *switchedUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &switchedUpstream{t: t, addr: ln.Addr().String(), target: target, conns: map[net.Conn]struct{}{}}
	s.serve(ln)
	t.Cleanup(func() {
		s.off()
		s.wg.Wait()
	})
	return s
}

// on listens again on the same port.
func (s *switchedUpstream) on() {
	s.t.Helper()
	ln, err := net.Listen("tcp", s.addr)
	if err != nil {
		s.t.Fatalf("listen again on %s: %v", s.addr, err)
	}
	s.serve(ln)
}

// off closes the listener and every relayed connection.
func (s *switchedUpstream) off() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln != nil {
		s.ln.Close()
		s.ln = nil
	}
	for c := range s.conns {
		c.Close()
	}
}

func (s *switchedUpstream) serve(ln net.Listener) {
	s.mu.Lock()
	s.ln = ln
	s.mu.Unlock()
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.wg.Go(func() { s.relay(c) })
		}
	})
}

func (s *switchedUpstream) relay(c net.Conn) {
	up, err := net.Dial("tcp", s.target)
	if err != nil {
		c.Close()
		return
	}
	if !s.track(c, up) {
		return
	}
	var copies sync.WaitGroup
	for _, p := range [][2]net.Conn{{up, c}, {c, up}} {
		copies.Go(func() {
			io.Copy(p[0], p[1])
			// Either side leaving ends the pair.
			p[0].Close()
			p[1].Close()
		})
	}
	copies.Wait()
	s.mu.Lock()
	delete(s.conns, c)
	delete(s.conns, up)
	s.mu.Unlock()
}

// track registers a relayed pair, or closes it when the switch is off.
func (s *switchedUpstream) track(conns ...net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		s.conns[c] = struct{}{}
	}
	return true
}

// TestA2_SourceSlowedOnTheWire: parallel connections from one source
// pipelining wrong logins are slowed as one source (once failures have
// settled, each answer takes its turn, so the attack takes at least the sum
// of the delays), while another source and another user log in meanwhile
// without waiting for the attacker's queue.
func TestA2_SourceSlowedOnTheWire(t *testing.T) {
	t.Parallel()
	const (
		free   = 2
		delay  = 100 * time.Millisecond
		conns  = 5
		perCon = 4
	)
	peer := startPeer(t, "bob", "carol")
	e := startE2E(t, peer, e2eOptions{users: []string{"bob", "carol"}, limits: []string{
		fmt.Sprintf("source_free_failures = %d", free), fmt.Sprintf("source_delay = %q", delay.String()),
		`source_max_delay = "200ms"`, "user_source_failure_budget = 1000",
	}})
	const attacker, other = "127.0.0.2", "127.0.0.3"

	start := time.Now()
	var wg sync.WaitGroup
	answers := make(chan string, conns*perCon)
	for c := range conns {
		w := e.dialWire(t, "imaps", attacker)
		w.expect("* OK")
		var lines []string
		for i := range perCon {
			lines = append(lines, fmt.Sprintf("a%d LOGIN bob guess-%d-%d-%s", i, c, i, rand.Text()))
		}
		wg.Go(func() {
			w.send(lines...) // pipelined: one write
			for i := range perCon {
				w.conn.SetReadDeadline(time.Now().Add(time.Minute))
				s, err := w.r.ReadString('\n')
				if err != nil {
					answers <- fmt.Sprintf("read %d: %v", i, err)
					return
				}
				answers <- s
			}
		})
	}
	attackDone := make(chan struct{})
	go func() { wg.Wait(); close(attackDone) }()

	// Once the attacker is being slowed, other sources and users must not
	// queue behind it.
	deadline := time.Now().Add(e2eWait)
	for e.metric(t, `postern_logins_total{protocol="imap",result="denied"}`) < free+1 {
		if time.Now().After(deadline) {
			t.Fatal("the attack never got past its free failures")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if got := e.imapTry(t, other, "carol", e.account("carol").appPassword); !strings.HasPrefix(got, "a OK") {
		t.Errorf("another user from another source: %q", got)
	}
	if got := e.imapTry(t, other, "bob", e.account("bob").appPassword); !strings.HasPrefix(got, "a OK") {
		t.Errorf("the attacked user from another source: %q", got)
	}
	select {
	case <-attackDone:
		t.Error("the other source's logins waited for the attacker's queue")
	default:
	}
	<-attackDone
	elapsed := time.Since(start)
	close(answers)
	for a := range answers {
		if !strings.Contains(a, "NO [AUTHENTICATIONFAILED]") {
			t.Errorf("attacker answer %q", a)
		}
	}
	// A lower bound, not a speed figure: every guess after the first one on
	// each connection (which may all be in flight before any failure
	// settles) waited at least one delay, one after another.
	if floor := time.Duration(conns*(perCon-1)) * delay; elapsed < floor {
		t.Errorf("%d pipelined guesses from one source over %d connections took %s, want at least %s",
			conns*perCon, conns, elapsed, floor)
	}
}
