package proxy

import (
	"bytes"
	"context"
	"log/slog"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	dto "github.com/prometheus/client_model/go"

	"github.com/postern-dev/postern/authstore"
)

// TestP5_PipelinedAfterLogin: bytes the client sent behind its login reach
// the upstream once, after the upstream login, and bytes the upstream sent
// behind its answer reach the client once, after Accept.
func TestP5_PipelinedAfterLogin(t *testing.T) {
	tests := []struct {
		name, user string
		wantFirst  string // first line after OK, from the upstream
	}{
		{name: "echo", user: "gate", wantFirst: "CMD1"},
		{name: "upstream sends right after its OK", user: "post", wantFirst: "POSTLOGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			cl := h.dial()
			cl.Write("LOGIN " + tt.user + " pw\r\nCMD1\r\nCMD2\r\n")
			cl.ExpectLines("OK " + tt.user)
			rec := h.nextUpstream()
			id := h.sessionOf(tt.user, "password")
			cl.ExpectLines(tt.wantFirst)
			if tt.wantFirst != "CMD1" {
				cl.ExpectLines("CMD1")
			}
			cl.ExpectLines("CMD2")
			cl.Write("QUIT-RELAYED\r\n")
			cl.ExpectLines("QUIT-RELAYED")
			cl.Conn().Close()
			rec.wait(t)
			want := "USER " + tt.user + " " + id + "\r\nCMD1\r\nCMD2\r\nQUIT-RELAYED\r\n"
			if got := rec.received(); got != want {
				t.Errorf("upstream received %q, want %q", got, want)
			}
			if rec.early {
				t.Error("pipelined bytes reached the upstream before its login finished")
			}
		})
	}
}

// TestP5_UpstreamRefusesLogin: when the upstream refuses the proxy's login,
// the bytes pipelined behind the client's login never reach it, the client
// hears "try later" and may log in again on the same connection.
func TestP5_UpstreamRefusesLogin(t *testing.T) {
	h := newHarness(t)
	cl := h.dial()
	cl.Write("LOGIN refuse pw\r\nSELECT INBOX\r\n")
	cl.ExpectLines("NO upstream")
	rec := h.nextUpstream()
	rec.wait(t)
	if got := rec.received(); !regexp.MustCompile(`^USER refuse [0-9a-f]{32}\r\n$`).MatchString(got) {
		t.Errorf("upstream received %q, want only the USER line", got)
	}
	cl.ExpectLines("BAD") // the pipelined line met the pre-auth parser instead
	cl.Write("LOGIN alice pw\r\n")
	cl.ExpectLines("OK alice")
	if n := len(h.reg.List()); n != 1 {
		t.Errorf("%d live sessions, want 1", n)
	}
	if got := testutil.ToFloat64(h.metrics.logins.WithLabelValues("imap", resultUpstreamError)); got != 1 {
		t.Errorf("upstream_error logins = %v, want 1", got)
	}
}

// TestLoginDoneOnlyForUpstreamLogins: LoginDone hears of each login the
// upstream accepted (readiness takes it as a sign of life), and of no
// refused credential or refused upstream login.
func TestLoginDoneOnlyForUpstreamLogins(t *testing.T) {
	var done atomic.Int32
	h := newHarness(t, func(c *ServerConfig, _ *harness) { c.LoginDone = func() { done.Add(1) } })
	cl := h.dial()
	cl.Write("LOGIN alice wrong\r\n")
	cl.ExpectLines("NO auth")
	cl.Write("LOGIN refuse pw\r\n")
	cl.ExpectLines("NO upstream")
	if n := done.Load(); n != 0 {
		t.Fatalf("LoginDone called %d times before any upstream login succeeded", n)
	}
	cl.Write("LOGIN alice pw\r\n")
	cl.ExpectLines("OK alice")
	if n := done.Load(); n != 1 {
		t.Errorf("LoginDone called %d times for one login, want 1", n)
	}
}

// TestAuthFailureForwardsNothing: a refused credential never costs the
// upstream a byte, and a user name with CR/LF/NUL never reaches
// authstore or the upstream at all.
func TestAuthFailureForwardsNothing(t *testing.T) {
	tests := []struct {
		name       string
		login      string
		overlap    bool // the check waits until the upstream accepted the dial
		wantAnswer string
		wantResult string
		wantCalls  int32
		wantDial   bool
		noDial     bool // a throttled guess must not cost the upstream a connection
	}{
		{name: "wrong secret, dial overlapping the check", login: "LOGIN alice wrong", overlap: true,
			wantAnswer: "NO auth", wantResult: resultDenied, wantCalls: 1, wantDial: true},
		{name: "wrong secret", login: "LOGIN alice wrong",
			wantAnswer: "NO auth", wantResult: resultDenied, wantCalls: 1},
		{name: "throttled", login: "LOGIN throttled pw",
			wantAnswer: "NO auth", wantResult: resultThrottled, wantCalls: 1, noDial: true},
		{name: "store unavailable", login: "LOGIN unavailable pw",
			wantAnswer: "NO unavailable", wantResult: resultUnavailable, wantCalls: 1},
		{name: "CR in user name", login: "LOGIN alice%0D%0AX pw",
			wantAnswer: "NO auth", wantResult: resultDenied, wantCalls: 0},
		{name: "NUL in user name", login: "LOGIN alice%00 pw",
			wantAnswer: "NO auth", wantResult: resultDenied, wantCalls: 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t)
			if tt.overlap {
				h.auth.hook = func(ctx context.Context, a authstore.Attempt) error {
					select {
					case rec := <-h.up.accepted:
						h.up.accepted <- rec // leave it for the test
						return nil
					case <-ctx.Done():
						return ctx.Err()
					}
				}
			}
			cl := h.dial()
			cl.Write(tt.login + "\r\nPIPELINED\r\n")
			cl.ExpectLines(tt.wantAnswer)
			cl.ExpectLines("BAD")
			cl.Write("QUIT\r\n")
			expectEnd(t, cl, "quit", time.Now().Add(ioTimeout))
			if got := h.auth.calls.Load(); got != tt.wantCalls {
				t.Errorf("Authenticate called %d times, want %d", got, tt.wantCalls)
			}
			h.shutdown() // every dial has ended one way or the other
			var recs []*upRecord
			for len(h.up.accepted) > 0 {
				recs = append(recs, <-h.up.accepted)
			}
			if tt.wantDial && len(recs) == 0 {
				t.Error("the dial did not overlap the check")
			}
			if (tt.wantCalls == 0 || tt.noDial) && len(recs) != 0 {
				t.Errorf("upstream got %d connections for a refused user name", len(recs))
			}
			for _, rec := range recs {
				rec.wait(t)
				if got := rec.received(); got != "" {
					t.Errorf("upstream received %q after a failed check", got)
				}
			}
			if got := testutil.ToFloat64(h.metrics.logins.WithLabelValues("imap", tt.wantResult)); got != 1 {
				t.Errorf("logins{result=%s} = %v, want 1", tt.wantResult, got)
			}
		})
	}
}

// TestLoginLog: one Info record per attempt with the canonical user when
// known and the raw name escaped otherwise, and never the secret.
func TestLoginLog(t *testing.T) {
	var buf syncBuffer
	h := newHarness(t, func(c *ServerConfig, _ *harness) {
		c.Logger = slog.New(slog.NewTextHandler(&buf, nil))
	})
	cl := h.dial()
	cl.Write("LOGIN ALICE s3cret-wrong\r\n")
	cl.ExpectLines("NO auth")
	cl.Write("LOGIN evil%0D%0Aresult=ok ap-s3cret\r\n")
	cl.ExpectLines("NO auth")
	cl.Write("LOGIN ALICE pw\r\n")
	cl.ExpectLines("OK alice")
	h.shutdown()
	var logins []string
	for _, line := range strings.Split(buf.String(), "\n") {
		if strings.Contains(line, "msg=login") {
			logins = append(logins, line)
		}
	}
	wants := []string{
		`user=ALICE source=127.0.0.1:[0-9]+ result=denied reason="authentication failed"`,
		`user="\\"evil\\\\r\\\\nresult=ok\\"" source=127.0.0.1:[0-9]+ result=denied reason=`,
		`user=alice source=127.0.0.1:[0-9]+ result=ok reason="" duration=`,
	}
	if len(logins) != len(wants) {
		t.Fatalf("%d login records, want %d:\n%s", len(logins), len(wants), buf.String())
	}
	for i, want := range wants {
		if !regexp.MustCompile(want).MatchString(logins[i]) {
			t.Errorf("record %d = %s\nwant match %s", i, logins[i], want)
		}
	}
	if strings.Contains(buf.String(), "s3cret") {
		t.Errorf("a secret reached the log:\n%s", buf.String())
	}
}

// TestP3_PreAuthDeadline: the pre-auth deadline is absolute: a silent
// client and one that keeps sending harmless commands are both closed.
func TestP3_PreAuthDeadline(t *testing.T) {
	tests := []struct {
		name   string
		chatty bool
	}{
		{name: "silent client"},
		{name: "client sending NOOPs", chatty: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withLimits(Limits{PreAuthTimeout: 300 * time.Millisecond}))
			cl := h.dial()
			deadline := time.Now().Add(ioTimeout)
			for tt.chatty {
				// The server closes with a NOOP unread, so the kernel may
				// answer with a reset that can swallow the BYE: any end
				// of the connection before the harness timeout will do.
				cl.Conn().SetWriteDeadline(deadline)
				if _, err := cl.Conn().Write([]byte("NOOP\r\n")); err != nil {
					return
				}
				line, err := cl.LineBefore(deadline)
				if isTimeout(err) {
					t.Fatal("the connection outlived the pre-auth deadline")
				}
				if err != nil || line == "BYE login timeout" {
					return
				}
				if line != "OK noop" {
					t.Fatalf("read %q", line)
				}
			}
			expectEnd(t, cl, "login timeout", deadline)
		})
	}
}

// TestP3_ConnectionCaps: the connection past a cap is closed at once,
// without a greeting, and counted; a freed slot admits the next client.
func TestP3_ConnectionCaps(t *testing.T) {
	tests := []struct {
		name   string
		limits Limits
		reason string
	}{
		{name: "per IP", limits: Limits{MaxConnsPerIP: 2}, reason: refusedMaxConnsPerIP},
		{name: "global", limits: Limits{MaxConns: 2}, reason: refusedMaxConns},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, withLimits(tt.limits))
			first := h.dial()
			h.loggedIn("alice", "pw") // a relayed session holds its slot too
			over := h.connect()
			expectEnd(t, over, "", time.Now().Add(ioTimeout))
			if got := testutil.ToFloat64(h.metrics.refused.WithLabelValues("imap", tt.reason)); got != 1 {
				t.Errorf("refused{%s} = %v, want 1", tt.reason, got)
			}
			first.Write("QUIT\r\n")
			expectEnd(t, first, "quit", time.Now().Add(ioTimeout))
			eventually(t, "the slot to be freed", func() bool {
				h.srv.mu.Lock()
				defer h.srv.mu.Unlock()
				return len(h.srv.sessions) == 1
			})
			h.dial()
		})
	}
}

// TestShutdown ends relayed and pre-auth sessions with a Bye, makes Serve
// return nil and leaves no goroutine behind.
func TestShutdown(t *testing.T) {
	base := runtime.NumGoroutine()
	h := newHarness(t)
	relayed := h.loggedIn("alice", "pw")
	preauth := h.dial()
	failed := h.dial()
	failed.Write("LOGIN alice wrong\r\n")
	failed.ExpectLines("NO auth")
	h.shutdown()
	deadline := time.Now().Add(ioTimeout)
	expectEnd(t, relayed, "server shutting down", deadline)
	expectEnd(t, preauth, "server shutting down", deadline)
	expectEnd(t, failed, "server shutting down", deadline)
	if n := len(h.reg.List()); n != 0 {
		t.Errorf("%d sessions still registered", n)
	}
	if got := testutil.ToFloat64(h.metrics.live.WithLabelValues("imap")); got != 0 {
		t.Errorf("sessions_live = %v after shutdown", got)
	}
	for _, c := range []*client{relayed, preauth, failed} {
		c.Conn().Close()
	}
	h.up.ln.Close()
	goroutinesBack(t, base)
}

// TestMetricsCounted checks the counters of a login and a relay.
func TestMetricsCounted(t *testing.T) {
	h := newHarness(t)
	cl := h.loggedIn("alice", "ap-1")
	if got := testutil.ToFloat64(h.metrics.live.WithLabelValues("imap")); got != 1 {
		t.Errorf("sessions_live = %v, want 1", got)
	}
	cl.Write("hello upstream\r\n")
	cl.ExpectLines("hello upstream")
	cl.Conn().Close()
	eventually(t, "the session to end", func() bool { return len(h.reg.List()) == 0 })
	checks := []struct {
		name string
		got  float64
		want float64
	}{
		{"logins ok", testutil.ToFloat64(h.metrics.logins.WithLabelValues("imap", resultOK)), 1},
		{"sessions_live", testutil.ToFloat64(h.metrics.live.WithLabelValues("imap")), 0},
		{"relayed in", testutil.ToFloat64(h.metrics.relayed.WithLabelValues("imap", "in")), 16},
		{"relayed out", testutil.ToFloat64(h.metrics.relayed.WithLabelValues("imap", "out")), 16},
		{"dials", float64(histogramCount(t, h.metrics.dial, "imap")), 1},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %v, want %v", c.name, c.got, c.want)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for a logger used by many goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// histogramCount returns how many observations h holds for label.
func histogramCount(t *testing.T, h *prometheus.HistogramVec, label string) uint64 {
	t.Helper()
	var m dto.Metric
	if err := h.WithLabelValues(label).(prometheus.Metric).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram().GetSampleCount()
}
