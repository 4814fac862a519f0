package load_test

import (
	"bufio"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/bench/relay"
	"github.com/postern-dev/postern/internal/memimap"
	"github.com/postern-dev/postern/internal/testpeer"
)

var accounts = []load.Account{{User: "alice", Password: "alice-secret"}, {User: "bob", Password: "bob-secret"}}

// upstream is an in-memory IMAP server with the test accounts, reachable
// directly (plain) and through a TLS-terminating bare relay.
type upstream struct {
	srv           *memimap.Server
	plain, secure load.Target
}

func startUpstream(t *testing.T) *upstream {
	t.Helper()
	users := map[string]string{}
	for _, a := range accounts {
		users[a.User] = a.Password
	}
	srv, err := memimap.Start("", users, memimap.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	serverTLS, clientTLS := testpeer.TLS(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		relay.New(relay.Config{Upstream: srv.Addr(), TLS: serverTLS}).Serve(ln)
	}()
	t.Cleanup(func() {
		ln.Close()
		srv.Close() // ends the relayed sessions, so Serve can return
		<-done
	})
	return &upstream{srv: srv, plain: load.Target{Addr: srv.Addr()}, secure: load.Target{Addr: ln.Addr().String(), TLS: clientTLS}}
}

func TestLogins(t *testing.T) {
	u := startUpstream(t)
	withSources := u.secure
	withSources.Sources = []net.IP{net.IPv4(127, 0, 0, 1), net.IPv4(127, 0, 0, 2)}
	tests := []struct {
		name   string
		target load.Target
	}{
		{"plain", u.plain},
		{"tls through the relay", u.secure},
		{"several source addresses", withSources},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := load.Logins(t.Context(), load.LoginConfig{Target: tt.target, Accounts: accounts,
				Concurrency: 4, Warmup: 50 * time.Millisecond, Duration: 300 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			l := res.Latency
			switch {
			case res.Errors != 0:
				t.Fatalf("%d errors, first %v", res.Errors, res.FirstErr)
			case res.Logins == 0 || l.N != res.Logins || len(res.Latencies) != res.Logins:
				t.Fatalf("logins %d, latency samples %d/%d", res.Logins, l.N, len(res.Latencies))
			case res.Total < res.Logins:
				t.Fatalf("total %d < logins in the window %d", res.Total, res.Logins)
			case l.P50 <= 0 || l.P50 > l.P99 || l.P99 > l.Max:
				t.Fatalf("latency summary out of order: %+v", l)
			case res.PerSecond() <= 0:
				t.Fatalf("rate %v", res.PerSecond())
			}
		})
	}
}

func TestLoginsFail(t *testing.T) {
	u := startUpstream(t)
	stalled := stallingServer(t)
	tests := []struct {
		name    string
		target  load.Target
		account load.Account
		wantErr error
	}{
		{"wrong password", u.plain, load.Account{User: "alice", Password: "wrong"}, load.ErrResponse},
		{"nothing listens", load.Target{Addr: closedAddr(t)}, accounts[0], nil},
		{"server never answers LOGIN", load.Target{Addr: stalled}, accounts[0], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := load.Logins(t.Context(), load.LoginConfig{Target: tt.target, Accounts: []load.Account{tt.account},
				Concurrency: 2, Duration: 200 * time.Millisecond, Grace: 100 * time.Millisecond})
			if err == nil || res.Logins != 0 {
				t.Fatalf("logins %d, err %v; want none and an error", res.Logins, err)
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Fatalf("err %v, want %v", err, tt.wantErr)
			}
		})
	}
}

func TestAdd(t *testing.T) {
	a := load.LoginResult{Logins: 2, Total: 3, Elapsed: time.Second, Latencies: []time.Duration{3, 1}}
	b := load.LoginResult{Logins: 1, Errors: 1, Total: 2, Elapsed: time.Second, Latencies: []time.Duration{2},
		FirstErr: load.ErrResponse}
	a.Add(b)
	if a.Logins != 3 || a.Errors != 1 || a.Total != 5 || a.Elapsed != 2*time.Second || a.FirstErr != load.ErrResponse {
		t.Fatalf("merged %+v", a)
	}
	if a.Latency.N != 3 || a.Latency.P50 != 2 || a.Latency.Max != 3 || a.PerSecond() != 1.5 {
		t.Fatalf("merged latency %+v, rate %v", a.Latency, a.PerSecond())
	}
}

func TestFetch(t *testing.T) {
	u := startUpstream(t)
	raw := []byte("From: a@example.org\r\nSubject: big\r\n\r\n" + strings.Repeat("0123456789abcdef\r\n", 10000))
	if err := u.srv.Append("alice", "big", raw); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		name   string
		target load.Target
	}{{"plain", u.plain}, {"tls through the relay", u.secure}} {
		t.Run(tt.name, func(t *testing.T) {
			res, err := load.Fetch(t.Context(), load.FetchConfig{Target: tt.target, Account: accounts[0],
				Mailbox: "big", Seq: 1, MinFetches: 3})
			if err != nil {
				t.Fatal(err)
			}
			if res.Fetches < 3 || res.Bytes != int64(res.Fetches*len(raw)) || res.MBPerSecond() <= 0 {
				t.Fatalf("%d fetches, %d bytes (message %d), %v MB/s", res.Fetches, res.Bytes, len(raw), res.MBPerSecond())
			}
		})
	}
	t.Run("no such message", func(t *testing.T) {
		_, err := load.Fetch(t.Context(), load.FetchConfig{Target: u.plain, Account: accounts[0], Mailbox: "big", Seq: 9, MinFetches: 1})
		if err == nil {
			t.Fatal("fetch of a missing message: no error")
		}
	})
}

func TestHolder(t *testing.T) {
	u := startUpstream(t)
	h := load.NewHolder(load.IdleConfig{Target: u.secure, Accounts: accounts, Mailbox: "INBOX", Parallel: 4})
	t.Cleanup(h.Close)
	for _, n := range []int{10, 25, 25} {
		if err := h.Grow(t.Context(), n); err != nil {
			t.Fatal(err)
		}
		if alive, err := h.Alive(); err != nil || h.Len() != n || alive != n {
			t.Fatalf("after Grow(%d): held %d, alive %d (%v)", n, h.Len(), alive, err)
		}
	}
	// Ending the sessions upstream must show: the relay closes its clients.
	u.srv.Close()
	for _, c := range h.Conns() {
		c.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, c); err != nil {
			t.Fatalf("waiting for the end of a session: %v", err)
		}
	}
	// The TLS close alert can arrive a moment before the TCP FIN that Alive
	// looks for; poll for it with a deadline.
	deadline := time.Now().Add(10 * time.Second)
	for {
		alive, err := h.Alive()
		if err == nil && alive == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the server closed: alive %d (%v), want 0", alive, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestHolderFails(t *testing.T) {
	u := startUpstream(t)
	h := load.NewHolder(load.IdleConfig{Target: u.plain, Accounts: []load.Account{{User: "alice", Password: "wrong"}},
		Mailbox: "INBOX", Parallel: 3})
	t.Cleanup(h.Close)
	if err := h.Grow(t.Context(), 5); err == nil || !errors.Is(err, load.ErrResponse) {
		t.Fatalf("Grow with a wrong password: %v", err)
	}
	if h.Len() != 0 {
		t.Fatalf("held %d sessions after failed logins", h.Len())
	}
}

// stallingServer greets and then never answers.
func stallingServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.Write([]byte("* OK stalling\r\n"))
				context.AfterFunc(ctx, func() { c.Close() })
				bufio.NewReader(c).WriteTo(io.Discard)
			})
		}
	})
	t.Cleanup(func() {
		cancel()
		ln.Close()
		wg.Wait()
	})
	return ln.Addr().String()
}

// closedAddr is a loopback address nothing listens on.
func closedAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
