package proxy

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/linetest"
)

func withClientTLS(t *testing.T) harnessOpt {
	cert, pool := testCert(t)
	return func(c *ServerConfig, h *harness) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
		c.ImplicitTLS = true
		h.clientTLS = &tls.Config{RootCAs: pool}
	}
}

func withUpstreamTLS(t *testing.T) harnessOpt {
	cert, pool := testCert(t)
	return func(c *ServerConfig, _ *harness) {
		c.Upstream.Security = Implicit
		// The harness serves the fake upstream with these certificates.
		c.Upstream.TLS = &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cert}}
	}
}

func withPark(d time.Duration) harnessOpt {
	return func(_ *ServerConfig, h *harness) { h.park = d }
}

// TestRelayByteExact pushes 10 MB through an echoing upstream while
// reading the echo, over every combination of TLS and plain TCP (plain on
// both sides splices, the others copy through a buffer).
func TestRelayByteExact(t *testing.T) {
	const size = 10 << 20
	tests := []struct {
		name string
		opts func(t *testing.T) []harnessOpt
	}{
		{"plain both sides", func(*testing.T) []harnessOpt { return nil }},
		{"TLS client", func(t *testing.T) []harnessOpt { return []harnessOpt{withClientTLS(t)} }},
		{"TLS upstream", func(t *testing.T) []harnessOpt { return []harnessOpt{withUpstreamTLS(t)} }},
		{"TLS both sides", func(t *testing.T) []harnessOpt {
			return []harnessOpt{withClientTLS(t), withUpstreamTLS(t)}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, tt.opts(t)...)
			data := make([]byte, size)
			rand.Read(data)
			cl := h.loggedIn("alice", "pw")
			rec := h.nextUpstream()
			wrote := make(chan error, 1)
			go func() {
				cl.Conn().SetWriteDeadline(time.Now().Add(ioTimeout))
				_, err := cl.Conn().Write(data)
				wrote <- err
			}()
			got := make([]byte, size)
			cl.Conn().SetReadDeadline(time.Now().Add(ioTimeout))
			if _, err := io.ReadFull(cl, got); err != nil {
				t.Fatalf("read echo: %v", err)
			}
			if err := <-wrote; err != nil {
				t.Fatalf("write: %v", err)
			}
			if !bytes.Equal(got, data) {
				t.Fatal("echo differs from what was sent")
			}
			cl.Conn().Close()
			rec.wait(t)
			if got := rec.received(); !strings.HasSuffix(got, string(data)) || len(got) != size+len("USER alice ")+32+2 {
				t.Errorf("upstream received %d bytes, want the USER line and %d", len(got), size)
			}
			eventually(t, "the session to end", func() bool { return len(h.reg.List()) == 0 })
			for _, dir := range []string{"in", "out"} {
				if got := testutil.ToFloat64(h.metrics.relayed.WithLabelValues("imap", dir)); got != size {
					t.Errorf("relayed %s = %v, want %d", dir, got, size)
				}
			}
		})
	}
}

// TestRelayAfterStartTLS: after STARTTLS the relay speaks TLS to the
// client on the upgraded connection, never plaintext on the socket under it.
func TestRelayAfterStartTLS(t *testing.T) {
	cert, pool := testCert(t)
	h := newHarness(t, func(c *ServerConfig, _ *harness) {
		c.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	})
	cl := h.dial()
	cl.Write("STARTTLS\r\n")
	cl.ExpectLines("OK begin")
	tc := tls.Client(cl.Conn(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
	tc.SetDeadline(time.Now().Add(ioTimeout))
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	cl = linetest.NewClient(t, tc, nil)
	cl.Write("LOGIN alice pw\r\nafter tls\r\n")
	cl.ExpectLines("OK alice")
	cl.ExpectLines("after tls")
	cl.Write("QUIT-RELAYED\r\n")
	cl.ExpectLines("QUIT-RELAYED")
}

// TestHalfClose: when one side finishes sending, the other side learns it
// (EOF) and may still send.
func TestHalfClose(t *testing.T) {
	t.Run("client finishes first", func(t *testing.T) {
		h := newHarness(t)
		cl := h.loggedIn("alice", "pw")
		cl.Write("last words\r\n")
		cl.Conn().(*net.TCPConn).CloseWrite()
		cl.ExpectLines("last words")
		expectEnd(t, cl, "", time.Now().Add(ioTimeout))
	})
	t.Run("upstream finishes first", func(t *testing.T) {
		h := newHarness(t)
		cl := h.loggedIn("half", "pw")
		rec := h.nextUpstream()
		cl.ExpectLines("LAST")
		expectEnd(t, cl, "", time.Now().Add(ioTimeout)) // EOF, yet the session lives
		cl.Write("still talking\r\n")
		cl.Conn().Close()
		rec.wait(t)
		if got := rec.received(); !strings.HasSuffix(got, "\r\nstill talking\r\n") {
			t.Errorf("upstream received %q", got)
		}
	})
}

// withStore makes a real credential store the harness's Authenticator and
// tells the harness's registry of every revocation, as the gateway does.
func withStore(t *testing.T, st **authstore.Store) harnessOpt {
	return func(c *ServerConfig, h *harness) {
		keys, err := authstore.NewKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		s, err := authstore.Open(filepath.Join(t.TempDir(), "postern.db"), authstore.Options{Keys: keys,
			KDF:      authstore.KDFParams{Memory: 64, Time: 1, Threads: 1},
			OnRevoke: func(r authstore.Revocation) { h.reg.Revoke(r) }})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		c.Auth, *st = s, s
	}
}

// TestP10_Kick: each credential change an operator makes in the store
// ends exactly the live sessions it invalidates, each with a Bye and an
// end of stream within a second, and leaves the others relaying.
func TestP10_Kick(t *testing.T) {
	const password = "correct-horse-battery"
	type login struct{ user, app string } // app: "" for the account password
	logins := []login{{"alice", ""}, {"alice", "a1"}, {"bob", ""}, {"bob", "b1"}}
	ctx := context.Background()
	tests := []struct {
		name   string
		do     func(st *authstore.Store, ids map[string]string, h *harness) error
		kicked []int  // indexes into logins
		says   string // what the kicked clients are told
	}{
		{"app password revoked", func(st *authstore.Store, ids map[string]string, _ *harness) error {
			return st.RevokeAppPassword(ctx, "alice", ids["a1"])
		}, []int{1}, "this app password was revoked"},
		{"password changed, app passwords kept", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.SetPassword(ctx, "alice", "another-password", false)
		}, []int{0}, "the account password was changed"},
		{"password changed, app passwords revoked", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.SetPassword(ctx, "bob", "another-password", true)
		}, []int{2, 3}, "the account password was changed and every app password revoked"},
		{"user disabled", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.SetDisabled(ctx, "alice", true)
		}, []int{0, 1}, "this account was disabled"},
		{"user deleted", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.DeleteUser(ctx, "bob")
		}, []int{2, 3}, "this account was deleted"},
		{"two-step verification enforced", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.SetPolicy(ctx, authstore.Policy{MFARequired: true})
		}, []int{0, 2}, "two-step verification is now required and mail apps need an app password"},
		{"one session ended from the session list", func(_ *authstore.Store, ids map[string]string, h *harness) error {
			h.reg.Kick(Filter{SessionID: h.sessionOf("alice", ids["a1"])}, "credentials changed")
			return nil
		}, []int{1}, "credentials changed"},
		{"another user's change", func(st *authstore.Store, _ map[string]string, _ *harness) error {
			return st.SetDisabled(ctx, "carol", true)
		}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var st *authstore.Store
			h := newHarness(t, withStore(t, &st))
			ids := map[string]string{}
			for _, u := range []string{"alice", "bob", "carol"} {
				if _, err := st.CreateUser(ctx, authstore.NewUser{Name: u, Password: password}); err != nil {
					t.Fatal(err)
				}
			}
			clients := make([]*client, len(logins))
			for i, l := range logins {
				secret := password
				if l.app != "" {
					ap, grouped, err := st.CreateAppPassword(ctx, l.user, authstore.NewAppPassword{Name: l.app})
					if err != nil {
						t.Fatal(err)
					}
					ids[l.app], secret = ap.ID, strings.ReplaceAll(grouped, " ", "")
				}
				clients[i] = h.loggedIn(l.user, secret)
			}
			if err := tt.do(st, ids, h); err != nil {
				t.Fatal(err)
			}
			kicked := make(map[int]bool)
			deadline := time.Now().Add(time.Second) // the promise of P10
			for _, i := range tt.kicked {
				kicked[i] = true
				expectEnd(t, clients[i], tt.says, deadline)
			}
			for i, cl := range clients {
				if kicked[i] {
					continue
				}
				cl.Write(fmt.Sprintf("ping %d\r\n", i))
				cl.ExpectLines(fmt.Sprintf("ping %d", i))
			}
			eventually(t, "ended sessions to leave the registry", func() bool {
				return len(h.reg.List()) == len(logins)-len(tt.kicked)
			})
			for _, s := range h.reg.List() {
				for _, i := range tt.kicked {
					if cred := ids[logins[i].app]; s.Username == logins[i].user && (s.CredentialID == cred || cred == "" && s.CredentialID == "password") {
						t.Errorf("ended session %+v still listed", s)
					}
				}
			}
		})
	}
}

// TestKickDuringLogin: a revocation that lands after authstore accepted a
// login but before the session was registered still ends it.
func TestKickDuringLogin(t *testing.T) {
	h := newHarness(t)
	cl := h.dial()
	// The upstream login is the window between the verdict and the
	// registration: kick while the fake upstream holds its answer.
	cl.Write("LOGIN gate-alice pw\r\n")
	rec := h.nextUpstream()
	h.reg.Kick(Filter{Username: "gate-alice"}, "revoked")
	// Either the session never registered (login refused) or it did and
	// was ended; it must not survive.
	line, err := cl.LineBefore(time.Now().Add(ioTimeout))
	switch {
	case err != nil:
		t.Fatalf("read: %v", err)
	case line == "NO auth":
	case line == "OK gate-alice":
		expectEnd(t, cl, "revoked", time.Now().Add(ioTimeout))
	default:
		t.Fatalf("read %q", line)
	}
	rec.wait(t)
	if n := len(h.reg.List()); n != 0 {
		t.Errorf("%d sessions survived the kick", n)
	}
}

// TestIdleTimeout ends a relay after IdleTimeout without traffic in either
// direction, and not while either direction is busy.
func TestIdleTimeout(t *testing.T) {
	// Traffic comes every idle/8 for two idle periods; the margin lets a
	// loaded machine stall a tick by most of a second without ending a busy
	// relay.
	const idle = time.Second
	tests := []struct {
		name string
		user string
		busy func(t *testing.T, h *harness, cl *client)
	}{
		{"idle both ways", "alice", func(*testing.T, *harness, *client) {}},
		{"client and upstream talking", "alice", func(t *testing.T, h *harness, cl *client) {
			tick := time.NewTicker(idle / 8)
			defer tick.Stop()
			for i := range 16 {
				<-tick.C
				cl.Write(fmt.Sprintf("line %d\r\n", i))
				cl.ExpectLines(fmt.Sprintf("line %d", i))
			}
		}},
		{"only the client talking", "sink", func(t *testing.T, h *harness, cl *client) {
			rec := h.nextUpstream()
			tick := time.NewTicker(idle / 8)
			defer tick.Stop()
			var want strings.Builder
			for i := range 16 {
				<-tick.C
				line := fmt.Sprintf("line %d\r\n", i)
				want.WriteString(line)
				cl.Write(line)
			}
			eventually(t, "the upstream to receive every line", func() bool {
				return strings.HasSuffix(rec.received(), want.String())
			})
		}},
		{"only the upstream talking", "tick", func(t *testing.T, h *harness, cl *client) {
			for range 16 {
				cl.ExpectLines("tick")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			h := newHarness(t, withLimits(Limits{IdleTimeout: idle}), withPark(idle/8))
			cl := h.loggedIn(tt.user, "pw")
			tt.busy(t, h, cl)
			expectEnd(t, cl, "idle timeout", time.Now().Add(ioTimeout))
		})
	}
}

// TestGoroutinesBack: however a session ends, its goroutines end with it.
func TestGoroutinesBack(t *testing.T) {
	h := newHarness(t, withPark(20*time.Millisecond), withLimits(Limits{IdleTimeout: 200 * time.Millisecond}))
	base := runtime.NumGoroutine()
	quit := h.loggedIn("alice", "pw")
	kicked := h.loggedIn("bob", "pw")
	idle := h.loggedIn("carol", "pw")
	halfClosed := h.loggedIn("half", "pw")
	refused := h.dial()
	refused.Write("LOGIN refuse pw\r\n")
	refused.ExpectLines("NO upstream")
	denied := h.dial()
	denied.Write("LOGIN alice nope\r\n")
	denied.ExpectLines("NO auth")

	quit.Write("bye\r\n")
	quit.ExpectLines("bye")
	quit.Conn().Close()
	h.reg.Kick(Filter{Username: "bob"}, "kicked")
	expectEnd(t, kicked, "kicked", time.Now().Add(ioTimeout))
	expectEnd(t, idle, "idle timeout", time.Now().Add(ioTimeout))
	halfClosed.ExpectLines("LAST")
	halfClosed.Conn().Close()
	refused.Conn().Close()
	denied.Write("QUIT\r\n")
	expectEnd(t, denied, "quit", time.Now().Add(ioTimeout))
	eventually(t, "every session to end", func() bool { return len(h.reg.List()) == 0 })
	goroutinesBack(t, base)
}

// TestIdleSessionFootprint measures what an idle relayed session costs the
// proxy: 1,000 clients straight to the fake upstream first, then 1,000
// through the proxy, and the difference per session. It reports, it does
// not judge.
func TestIdleSessionFootprint(t *testing.T) {
	if testing.Short() {
		t.Skip("opens 2,000 connections")
	}
	const n = 1000
	h := newHarness(t, withPark(10*time.Millisecond))
	direct := footprint(t, n, func(i int) net.Conn {
		c, err := net.Dial("tcp", h.up.addr())
		if err != nil {
			t.Fatal(err)
		}
		cl := linetest.NewClient(t, c, nil)
		cl.ExpectLines("UP READY")
		cl.Write(fmt.Sprintf("USER user%d 0\r\n", i))
		cl.ExpectLines("OK")
		cl.Write("x\r\n")
		cl.ExpectLines("x")
		return c
	})
	proxied := footprint(t, n, func(i int) net.Conn {
		cl := h.loggedIn(fmt.Sprintf("user%d", i), "pw")
		cl.Write("x\r\n")
		cl.ExpectLines("x")
		return cl.Conn()
	})
	if got := len(h.reg.List()); got != n {
		t.Errorf("%d sessions listed, want %d", got, n)
	}
	// With park at 10 ms nearly every pump has left its copy for the
	// one-byte read by the time all logins are done.
	t.Logf("per idle session: direct %s; proxied %s; the proxy's own cost %s",
		direct, proxied, proxied.minus(direct))
}

type cost struct{ heap, stack, goroutines float64 }

func (c cost) minus(d cost) cost {
	return cost{c.heap - d.heap, c.stack - d.stack, c.goroutines - d.goroutines}
}

func (c cost) String() string {
	return fmt.Sprintf("%.0f B heap + %.0f B stacks, %.2f goroutines", c.heap, c.stack, c.goroutines)
}

// footprint opens n connections with open and returns the growth per
// connection; the connections stay open until the test ends.
func footprint(t *testing.T, n int, open func(i int) net.Conn) cost {
	t.Helper()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	g0 := runtime.NumGoroutine()
	conns := make([]net.Conn, n)
	for i := range conns {
		conns[i] = open(i)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	g1 := runtime.NumGoroutine()
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	return cost{
		heap:       (float64(after.HeapAlloc) - float64(before.HeapAlloc)) / float64(n),
		stack:      (float64(after.StackInuse) - float64(before.StackInuse)) / float64(n),
		goroutines: float64(g1-g0) / float64(n),
	}
}
