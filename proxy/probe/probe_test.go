package probe

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fakeclock"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuffer) logger() *slog.Logger { return slog.New(slog.NewTextHandler(l, nil)) }

func target(d Dialect, key, addr string, sec proxy.Security, tc *tls.Config) Target {
	return Target{Dialect: d, Key: key, Upstream: proxy.Upstream{Address: addr, Security: sec, TLS: tc}}
}

func TestProbeAnswersForAGoodConfiguration(t *testing.T) {
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{})
	tc := d.ClientTLSConfig()
	p := New(Config{Targets: []Target{
		target(IMAP(), "upstream.imap", d.IMAPAddr, proxy.StartTLS, tc),
		target(IMAP(), "upstream.imaps", d.IMAPSAddr, proxy.Implicit, tc),
		target(POP3(), "upstream.pop3", d.POP3Addr, proxy.StartTLS, tc),
		target(POP3(), "upstream.pop3s", d.POP3SAddr, proxy.Implicit, tc),
		target(IMAP(), "upstream.plain", d.IMAPAddr, proxy.None, nil),
	}})
	if ok, failing := p.Ready(); ok || len(failing) != 5 {
		t.Errorf("before any probe: Ready() = %v, %v; want not ready, all five", ok, failing)
	}
	for _, r := range p.probeAll(context.Background()) {
		if !r.OK {
			t.Errorf("%s: %s", r.Key, r.Problem)
		}
	}
	if ok, failing := p.Ready(); !ok {
		t.Errorf("Ready() = false, %v", failing)
	}
}

// TestProbeNamesTheKey: each misconfiguration is explained with the key to
// change, fast, and logged once as a warning.
func TestProbeNamesTheKey(t *testing.T) {
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{})
	tc := d.ClientTLSConfig()
	otherName := tc.Clone()
	otherName.ServerName = "mail.example"
	refused := testpeer.Fault(t, testpeer.FaultDown)
	tests := []struct {
		name string
		t    Target
		want []string
	}{
		{"starttls against implicit TLS", target(IMAP(), "upstream.imap", d.IMAPSAddr, proxy.StartTLS, tc),
			[]string{`upstream.imap.security = "starttls" but ` + d.IMAPSAddr + ` speaks TLS at once`, `set upstream.imap.security = "implicit"`}},
		{"pop3 none against implicit TLS", target(POP3(), "upstream.pop3", d.POP3SAddr, proxy.None, nil),
			[]string{`upstream.pop3.security = "none" but`, "speaks TLS at once"}},
		{"tls against plaintext", target(IMAP(), "upstream.imap", d.IMAPAddr, proxy.Implicit, tc),
			[]string{`upstream.imap.security = "implicit" but ` + d.IMAPAddr + ` answers in plaintext`, `"starttls"`}},
		{"pop3 tls against plaintext", target(POP3(), "upstream.pop3", d.POP3Addr, proxy.Implicit, tc),
			[]string{`upstream.pop3.security = "implicit" but`, "plaintext"}},
		{"untrusted certificate", target(IMAP(), "upstream.imap", d.IMAPSAddr, proxy.Implicit, nil),
			[]string{"upstream.imap.ca_file"}},
		{"untrusted certificate after STARTTLS", target(POP3(), "upstream.pop3", d.POP3Addr, proxy.StartTLS, nil),
			[]string{"upstream.pop3.ca_file"}},
		{"certificate for another name", target(IMAP(), "upstream.imap", d.IMAPSAddr, proxy.Implicit, otherName),
			[]string{"upstream.imap.server_name"}},
		{"nothing listening", target(IMAP(), "upstream.imap", refused, proxy.StartTLS, tc),
			[]string{"upstream.imap.address", "refused"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var logs logBuffer
			p := New(Config{Targets: []Target{tt.t}, Logger: logs.logger(), Timeout: time.Second})
			start := time.Now()
			r := p.probeAll(context.Background())[0]
			if r.OK {
				t.Fatal("probe passed")
			}
			for _, w := range tt.want {
				if !strings.Contains(r.Problem, w) {
					t.Errorf("problem %q does not say %q", r.Problem, w)
				}
			}
			// One greeting wait, one TLS check: far from the 15 s a login waits.
			if took := time.Since(start); took > 5*time.Second {
				t.Errorf("probe took %v", took)
			}
			if ok, failing := p.Ready(); ok || !slices.Equal(failing, []string{tt.t.Key}) {
				t.Errorf("Ready() = %v, %v", ok, failing)
			}
			p.probeAll(context.Background())
			if n := strings.Count(logs.String(), "upstream probe failed"); n != 1 {
				t.Errorf("%d warnings after two probes with the same problem:\n%s", n, logs.String())
			}
			if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "key="+tt.t.Key) {
				t.Errorf("warning does not name the key: %s", logs.String())
			}
		})
	}
}

// TestProbeBadGreetings: upstreams that greet with something else, or not
// at all, are reported without waiting for a login timeout.
func TestProbeBadGreetings(t *testing.T) {
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{})
	tests := []struct {
		name, addr, want string
	}{
		{"preauth", testpeer.Fault(t, testpeer.FaultPreauth), `greets with "* PREAUTH`},
		{"pop3 on the imap port", d.POP3Addr, `greets with "+OK`},
		{"silent", testpeer.Fault(t, testpeer.FaultBlackhole), "no greeting"},
		{"huge line", testpeer.Fault(t, testpeer.FaultHugeLine), "longer than"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Config{Targets: []Target{target(IMAP(), "upstream.imap", tt.addr, proxy.None, nil)}, Timeout: 300 * time.Millisecond})
			r := p.probeAll(context.Background())[0]
			if r.OK || !strings.Contains(r.Problem, tt.want) {
				t.Errorf("problem %q, want it to say %q", r.Problem, tt.want)
			}
		})
	}
}

func TestLoginRefusedLoggedAtMostOnceAMinute(t *testing.T) {
	var logs logBuffer
	clk := fakeclock.New(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))
	master := target(IMAP(), "upstream.imap", "127.0.0.1:1", proxy.StartTLS, nil)
	master.Login = LoginMaster
	stored := target(POP3(), "upstream.pop3", "127.0.0.1:2", proxy.StartTLS, nil)
	p := New(Config{Targets: []Target{master, stored}, Logger: logs.logger(), Clock: clk})
	for range 10 {
		p.LoginRefused("upstream.imap")
		p.LoginRefused("upstream.pop3") // a stored password: the user's, not the configuration's
		clk.Advance(5 * time.Second)
	}
	clk.Advance(15 * time.Second)
	p.LoginRefused("upstream.imap")
	out := logs.String()
	if n := strings.Count(out, "level=ERROR"); n != 2 {
		t.Errorf("%d error records over 65 s of refusals, want 2:\n%s", n, out)
	}
	for _, key := range []string{"upstream.imap.master_user", "upstream.imap.master_password_file"} {
		if !strings.Contains(out, key) {
			t.Errorf("the error does not name %s: %s", key, out)
		}
	}
	if strings.Contains(out, "upstream.pop3") {
		t.Errorf("a stored-password refusal was logged as a configuration error: %s", out)
	}
}

// TestProbeEndsWithItsContext: a shutdown does not wait for a silent
// upstream's greeting timeout.
func TestProbeEndsWithItsContext(t *testing.T) {
	addr := testpeer.Fault(t, testpeer.FaultBlackhole)
	p := New(Config{Targets: []Target{target(IMAP(), "upstream.imap", addr, proxy.StartTLS, nil)}, Timeout: time.Minute})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	time.Sleep(100 * time.Millisecond) // the probe is waiting for the greeting
	cancel()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Run still waiting for the greeting 10 s after its context ended")
	}
	if ok, _ := p.Ready(); ok {
		t.Error("ready after a probe cut short")
	}
}

// TestProbeDAV: an HTTP upstream is there when it answers OPTIONS below
// 500, unverified TLS and a refused connection name the key to look at,
// and a gateway error is a failure too.
func TestProbeDAV(t *testing.T) {
	radicale := testpeer.Radicale(t)
	gatewayError := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusBadGateway)
	}))
	t.Cleanup(gatewayError.Close)
	tlsUp := httptest.NewTLSServer(http.NotFoundHandler())
	t.Cleanup(tlsUp.Close)
	trusted := &tls.Config{RootCAs: x509.NewCertPool()}
	trusted.RootCAs.AddCert(tlsUp.Certificate())
	refused := testpeer.Fault(t, testpeer.FaultDown)
	tests := []struct {
		name    string
		url     string
		tc      *tls.Config
		problem []string // nil: the probe passes
	}{
		{"radicale", radicale.URL, nil, nil},
		{"https, trusted", tlsUp.URL + "/", trusted, nil},
		{"https, untrusted", tlsUp.URL + "/", nil, []string{"upstream.dav.ca_file"}},
		{"refused", "http://" + refused + "/", nil, []string{"upstream.dav.url", "refused"}},
		{"gateway error", gatewayError.URL + "/", nil, []string{"502 Bad Gateway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, err := url.Parse(tt.url)
			if err != nil {
				t.Fatal(err)
			}
			p := New(Config{Targets: []Target{{Key: "upstream.dav", URL: u, Upstream: proxy.Upstream{Address: u.Host, TLS: tt.tc}}},
				Timeout: 5 * time.Second})
			r := p.probeAll(context.Background())[0]
			if r.OK != (tt.problem == nil) {
				t.Fatalf("OK = %v, problem %q", r.OK, r.Problem)
			}
			for _, w := range tt.problem {
				if !strings.Contains(r.Problem, w) {
					t.Errorf("problem %q does not say %q", r.Problem, w)
				}
			}
			if ok, failing := p.Ready(); ok != r.OK || (!ok && !slices.Equal(failing, []string{"upstream.dav"})) {
				t.Errorf("Ready() = %v, %v", ok, failing)
			}
		})
	}
}

// waits follows the prober's waits on a fake clock: the test decides when
// each is over.
type waits struct {
	clk *fakeclock.Clock
	cur time.Duration
}

func newWaits() *waits {
	return &waits{clk: fakeclock.New(time.Date(2027, 1, 1, 0, 0, 0, 0, time.UTC))}
}

// next ends the current wait and returns the one asked for after the
// probe that follows.
func (w *waits) next(t *testing.T) time.Duration {
	t.Helper()
	w.clk.Advance(w.cur)
	return w.first(t)
}

func (w *waits) first(t *testing.T) time.Duration {
	t.Helper()
	select {
	case w.cur = <-w.clk.Waits():
		return w.cur
	case <-time.After(30 * time.Second):
		t.Fatal("no probe asked to wait")
		return 0
	}
}

// TestFailingUpstreamIsProbedSooner: a target that fails is probed again
// after a second, doubling up to the cap, and is ready at the first probe
// that passes; one that answers waits the whole interval, and its next
// failure starts the backoff afresh.
func TestFailingUpstreamIsProbedSooner(t *testing.T) {
	var status atomic.Int32
	status.Store(http.StatusServiceUnavailable)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(int(status.Load()))
	}))
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL + "/")
	w := newWaits()
	p := New(Config{Targets: []Target{{Key: "upstream.dav", URL: u, Upstream: proxy.Upstream{Address: u.Host}}},
		Interval: 30 * time.Second, Clock: w.clk})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		p.Run(ctx)
		close(done)
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	got := []time.Duration{w.first(t)}
	for range 4 {
		got = append(got, w.next(t))
	}
	if want := []time.Duration{time.Second, 2 * time.Second, 4 * time.Second, 5 * time.Second, 5 * time.Second}; !slices.Equal(got, want) {
		t.Errorf("waits after failures %v, want %v", got, want)
	}
	if ok, failing := p.Ready(); ok || !slices.Equal(failing, []string{"upstream.dav"}) {
		t.Errorf("while failing: Ready() = %v, %v", ok, failing)
	}
	status.Store(http.StatusMultiStatus)
	if d := w.next(t); d != 30*time.Second {
		t.Errorf("wait after a passing probe %v, want the interval", d)
	}
	if ok, failing := p.Ready(); !ok {
		t.Errorf("once it answers: Ready() = false, %v", failing)
	}
	status.Store(http.StatusBadGateway)
	if d := w.next(t); d != time.Second {
		t.Errorf("wait after a new failure %v, want 1s", d)
	}
}

// TestAnsweredMakesReady: a login the upstream accepted makes its target
// ready at once; another target's key changes nothing.
func TestAnsweredMakesReady(t *testing.T) {
	refused := testpeer.Fault(t, testpeer.FaultDown)
	p := New(Config{Targets: []Target{target(IMAP(), "upstream.imap", refused, proxy.None, nil)}})
	p.probeAll(context.Background())
	p.Answered("upstream.pop3")
	if ok, _ := p.Ready(); ok {
		t.Fatal("ready after another upstream answered")
	}
	p.Answered("upstream.imap")
	if ok, failing := p.Ready(); !ok {
		t.Errorf("Ready() = false, %v after a login went through", failing)
	}
}
