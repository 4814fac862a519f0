// Package probe checks that each configured upstream answers as its
// configuration says: for a mail upstream it connects, reads the greeting
// and completes TLS (implicit or STARTTLS) with certificate verification;
// for an SMTP upstream it also reads the EHLO answer, which tells whether
// the upstream offers what postern's login needs; for a DAV upstream it
// asks for OPTIONS over verified TLS. It explains a
// failure in terms of the configuration key to change. The results feed
// readiness (/readyz) and the log. It never logs in and never sends a
// credential.
package probe

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/postern-dev/postern/internal/clock"
	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// Dialect is what a probe needs to know of a mail protocol.
type Dialect struct {
	Name     string // "imap", "pop3"
	Greeting string // prefix of a good greeting
	StartTLS string // the command that starts TLS, CRLF included
	// TLSAnswer is the prefix of a good answer to StartTLS; other lines
	// (untagged IMAP responses) may come first.
	TLSAnswer string
	Quit      string
}

// IMAP is the IMAP4 dialect (RFC 9051 §7.1.1, §6.2.1).
func IMAP() Dialect {
	return Dialect{Name: "imap", Greeting: "* OK", StartTLS: "p1 STARTTLS\r\n", TLSAnswer: "p1 ", Quit: "p2 LOGOUT\r\n"}
}

// POP3 is the POP3 dialect (RFC 1939 §4, RFC 2595 §4).
func POP3() Dialect {
	return Dialect{Name: "pop3", Greeting: "+OK", StartTLS: "STLS\r\n", TLSAnswer: "", Quit: "QUIT\r\n"}
}

// Target is one upstream to probe.
type Target struct {
	Dialect  Dialect
	Key      string // its configuration section, e.g. "upstream.imap"
	Upstream proxy.Upstream
	// Login is how postern logs in to the upstream as a user, so that a
	// refused login points at the settings to check.
	Login Login
	// SMTP, when set, makes the target an SMTP upstream (smtp.go).
	SMTP *SMTPCheck
	// URL, when set, makes the target an HTTP upstream (DAV) instead of a
	// mail one: the probe sends OPTIONS for it, verifying an https
	// upstream with Upstream's TLS; Upstream.Address names it in results.
	URL *url.URL
}

// Login is how postern logs in to a mail upstream as a user.
type Login int

const (
	// LoginStored uses the user's own upstream password: a refusal is
	// about that user, not the configuration.
	LoginStored Login = iota
	// LoginMaster uses a master user's credential.
	LoginMaster
	// LoginXClient names the user with SMTP XCLIENT, which the upstream
	// takes only from addresses it trusts.
	LoginXClient
)

// refusalHint says what to check when the upstream refuses postern's own
// login; key is the upstream's configuration section. "" when a refusal
// is no configuration problem.
func (l Login) refusalHint(key string) string {
	switch l {
	case LoginMaster:
		return "the upstream refused postern's master login; check " + key + ".master_user and " + key +
			".master_password_file (and that the upstream allows that master user)"
	case LoginXClient:
		return "the upstream refused postern's XCLIENT login; check " + key + ".login and that the upstream " +
			"trusts postern's address (Postfix: smtpd_authorized_xclient_hosts)"
	}
	return ""
}

// result is the outcome of the last probe of a target.
type result struct {
	Key     string
	Address string
	OK      bool
	Problem string // what failed and which key to look at; empty when OK
	At      time.Time
}

// Config configures a Prober.
type Config struct {
	Targets []Target
	Logger  *slog.Logger
	// Interval between probes of a target that answers; default 30 s.
	Interval time.Duration
	// RetryMin is the wait before probing a target that failed its probe
	// again; it doubles with each failure in a row up to RetryMax. Defaults
	// 1 s and 5 s: an upstream that comes back is ready within seconds,
	// and one that stays down costs a connection every few seconds.
	RetryMin, RetryMax time.Duration
	// Timeout bounds each probe's wait for the greeting and each answer;
	// default 5 s. A server that greets later than this is broken for mail
	// clients anyway.
	Timeout time.Duration
	// Clock dates results and times the waits between probes; nil: the
	// system clock.
	Clock clock.Clock
}

// Prober probes every target at start, then every Interval while it
// answers and sooner while it does not. It is safe for concurrent use.
type Prober struct {
	cfg Config
	log *slog.Logger

	mu       sync.Mutex
	results  map[string]result
	warned   map[string]time.Time // last warning per key
	refusals map[string]time.Time // last master-login error per key
}

// refusalEvery and warnEvery bound how often the same problem is logged.
const (
	refusalEvery = time.Minute
	warnEvery    = 5 * time.Minute
)

// New returns a prober; Run starts it.
func New(cfg Config) *Prober {
	if cfg.Interval <= 0 {
		cfg.Interval = 30 * time.Second
	}
	if cfg.RetryMin <= 0 {
		cfg.RetryMin = time.Second
	}
	if cfg.RetryMax < cfg.RetryMin {
		cfg.RetryMax = max(5*time.Second, cfg.RetryMin)
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	cfg.Clock = clock.Or(cfg.Clock)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Prober{cfg: cfg, log: log, results: map[string]result{}, warned: map[string]time.Time{},
		refusals: map[string]time.Time{}}
}

// Run probes every target now and then again, each on its own schedule
// (watch), until ctx ends.
func (p *Prober) Run(ctx context.Context) {
	var wg sync.WaitGroup
	for _, t := range p.cfg.Targets {
		wg.Go(func() { p.watch(ctx, t) })
	}
	wg.Wait()
}

// watch probes t now, then every Interval while it answers. After a
// failure it probes again after RetryMin, doubling up to RetryMax: the
// interval suits an upstream that works, but readiness must follow one
// that comes back within seconds, not at the next interval.
func (p *Prober) watch(ctx context.Context, t Target) {
	retry := p.cfg.RetryMin
	for {
		r := p.probe(ctx, t)
		if ctx.Err() != nil {
			return // shutting down: a cut-short probe says nothing
		}
		p.record(r)
		wait := p.cfg.Interval
		if r.OK {
			retry = p.cfg.RetryMin
		} else {
			wait, retry = retry, min(2*retry, p.cfg.RetryMax)
		}
		if !sleep(ctx, p.cfg.Clock, wait) {
			return
		}
	}
}

// sleep waits d on c, or until ctx ends; it reports whether d passed.
func sleep(ctx context.Context, c clock.Clock, d time.Duration) bool {
	passed := make(chan struct{})
	stop := c.AfterFunc(d, func() { close(passed) })
	defer stop()
	select {
	case <-ctx.Done():
		return false
	case <-passed:
		return true
	}
}

// Answered records that the upstream of key just served a client (a login
// through the proxy succeeded): it evidently answers, whatever its last
// probe said, so readiness need not wait for the next probe.
func (p *Prober) Answered(key string) {
	for _, t := range p.cfg.Targets {
		if t.Key == key {
			p.record(result{Key: key, Address: t.Upstream.Address, OK: true, At: p.cfg.Clock.Now()})
			return
		}
	}
}

// probeAll probes every target once, at the same time, and logs what
// failed.
func (p *Prober) probeAll(ctx context.Context) []result {
	out := make([]result, len(p.cfg.Targets))
	var wg sync.WaitGroup
	for i, t := range p.cfg.Targets {
		wg.Go(func() { out[i] = p.probe(ctx, t) })
	}
	wg.Wait()
	if ctx.Err() != nil {
		return out // shutting down: a cut-short probe says nothing
	}
	for _, r := range out {
		p.record(r)
	}
	return out
}

// Ready reports whether every target answered its last probe, and the keys
// of those that did not (or were not probed yet).
func (p *Prober) Ready() (bool, []string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var failing []string
	for _, t := range p.cfg.Targets {
		if r, ok := p.results[t.Key]; !ok || !r.OK {
			failing = append(failing, t.Key)
		}
	}
	return len(failing) == 0, failing
}

// record stores r and logs a failure when it is new, changed, or has
// not been logged for warnEvery; a recovery is logged once.
func (p *Prober) record(r result) {
	p.mu.Lock()
	prev, seen := p.results[r.Key]
	p.results[r.Key] = r
	last := p.warned[r.Key]
	logIt := !r.OK && (!seen || prev.Problem != r.Problem || r.At.Sub(last) >= warnEvery)
	if logIt {
		p.warned[r.Key] = r.At
	}
	p.mu.Unlock()
	switch {
	case logIt:
		p.log.Warn("upstream probe failed", "key", r.Key, "addr", r.Address, "problem", r.Problem)
	case r.OK && seen && !prev.OK:
		p.log.Info("upstream answers again", "key", r.Key, "addr", r.Address)
	}
}

// LoginRefused is told when an upstream refused postern's own login for a
// user. With a master or XCLIENT login that is a configuration problem,
// logged at error level naming the keys, at most once a minute per
// upstream.
func (p *Prober) LoginRefused(key string) {
	var target *Target
	for i := range p.cfg.Targets {
		if p.cfg.Targets[i].Key == key {
			target = &p.cfg.Targets[i]
		}
	}
	if target == nil || target.Login.refusalHint(key) == "" {
		return
	}
	now := p.cfg.Clock.Now()
	p.mu.Lock()
	last, seen := p.refusals[key]
	if seen && now.Sub(last) < refusalEvery {
		p.mu.Unlock()
		return
	}
	p.refusals[key] = now
	p.mu.Unlock()
	p.log.Error(target.Login.refusalHint(key), "key", key, "addr", target.Upstream.Address)
}

// probe runs one target's dialogue under the timeouts.
func (p *Prober) probe(ctx context.Context, t Target) result {
	r := result{Key: t.Key, Address: t.Upstream.Address, At: p.cfg.Clock.Now()}
	err := p.dialogue(ctx, t)
	if err != nil {
		r.Problem = err.Error()
	} else {
		r.OK = true
	}
	return r
}

// errNoGreeting is a server that accepted the connection and said nothing.
var errNoGreeting = errors.New("no greeting")

func (p *Prober) dialogue(ctx context.Context, t Target) error {
	if t.URL != nil {
		return p.options(ctx, t)
	}
	up := t.Upstream
	implicit := up.Security == proxy.Implicit
	up.Security = proxy.None // the probe does TLS itself, to explain failures
	c, err := up.Dial(ctx)
	if err != nil {
		return fmt.Errorf("cannot connect (%s.address): %w", t.Key, err)
	}
	defer c.Close()
	conn := c.Conn
	defer bound(ctx, conn, p.cfg.Timeout)()
	if implicit {
		if conn, err = p.handshake(conn, t); err != nil {
			return err
		}
	}
	br := bufio.NewReaderSize(conn, 1024)
	if t.SMTP != nil {
		return p.smtpDialogue(ctx, conn, br, t, implicit)
	}
	line, err := readLine(br)
	if err != nil {
		return p.greetingProblem(ctx, t, implicit, err)
	}
	if !strings.HasPrefix(line, t.Dialect.Greeting) {
		return fmt.Errorf("%s greets with %q, not %q", up.Address, clip(line), t.Dialect.Greeting)
	}
	if t.Upstream.Security == proxy.StartTLS {
		if conn, err = p.startTLS(conn, br, t); err != nil {
			return err
		}
	}
	fmt.Fprint(conn, t.Dialect.Quit)
	return nil
}

// greetingProblem explains a greeting that did not come. On a plaintext
// or STARTTLS upstream, silence usually means the port speaks TLS at once
// (993, 995): the server waits for a TLS hello that never comes. A second
// connection tells that case apart.
func (p *Prober) greetingProblem(ctx context.Context, t Target, implicit bool, err error) error {
	if implicit || !isTimeout(err) {
		return fmt.Errorf("reading the greeting of %s: %w", t.Upstream.Address, err)
	}
	if p.speaksTLS(ctx, t) {
		return fmt.Errorf(`%s.security = %q but %s speaks TLS at once: set %s.security = "implicit"`,
			t.Key, t.Upstream.Security, t.Upstream.Address, t.Key)
	}
	return fmt.Errorf("%s sent no greeting within %s: %w", t.Upstream.Address, p.cfg.Timeout, errNoGreeting)
}

// speaksTLS reports whether the upstream answers a TLS hello with a TLS
// record, whatever the verification then says.
func (p *Prober) speaksTLS(ctx context.Context, t Target) bool {
	up := t.Upstream
	up.Security = proxy.None
	c, err := up.Dial(ctx)
	if err != nil {
		return false
	}
	defer c.Close()
	defer bound(ctx, c.Conn, p.cfg.Timeout)()
	cfg, err := up.ClientTLS()
	if err != nil {
		return false
	}
	// A verified handshake; whether it succeeds does not matter, only
	// whether the answer was TLS: a certificate the configuration does not
	// trust is TLS too. Nothing is sent over it.
	err = tls.Client(c.Conn, cfg).Handshake()
	var rh tls.RecordHeaderError
	return err == nil || (!errors.As(err, &rh) && !isTimeout(err) && !errors.Is(err, io.EOF) && !errors.Is(err, syscall.ECONNRESET))
}

// handshake completes implicit TLS, explaining a plaintext answer or a
// certificate that does not verify.
func (p *Prober) handshake(conn net.Conn, t Target) (net.Conn, error) {
	cfg, err := t.Upstream.ClientTLS()
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err = tc.Handshake(); err == nil {
		return tc, nil
	}
	var rh tls.RecordHeaderError
	if errors.As(err, &rh) && strings.HasPrefix(string(rh.RecordHeader[:]), t.Dialect.Greeting[:min(len(t.Dialect.Greeting), 5)]) {
		return nil, fmt.Errorf(`%s.security = "implicit" but %s answers in plaintext (%q…): set %s.security = "starttls" (or "none" on a private link)`,
			t.Key, t.Upstream.Address, string(rh.RecordHeader[:]), t.Key)
	}
	return nil, tlsProblem(t, err)
}

// startTLS asks for TLS after the greeting and completes the handshake.
func (p *Prober) startTLS(conn net.Conn, br *bufio.Reader, t Target) (net.Conn, error) {
	if _, err := fmt.Fprint(conn, t.Dialect.StartTLS); err != nil {
		return nil, fmt.Errorf("STARTTLS to %s: %w", t.Upstream.Address, err)
	}
	for range 50 {
		line, err := readLine(br)
		if err != nil {
			return nil, fmt.Errorf("STARTTLS to %s: %w", t.Upstream.Address, err)
		}
		rest, ok := strings.CutPrefix(line, t.Dialect.TLSAnswer)
		if !ok || (t.Dialect.TLSAnswer != "" && strings.HasPrefix(line, "* ")) {
			continue // an untagged IMAP response
		}
		if !strings.HasPrefix(rest, "OK") && !strings.HasPrefix(rest, "+OK") {
			return nil, fmt.Errorf(`%s refuses STARTTLS (%q): set %s.security = "implicit" for a port that speaks TLS at once, or "none"`,
				t.Upstream.Address, clip(line), t.Key)
		}
		return p.upgrade(conn, br, t)
	}
	return nil, fmt.Errorf("STARTTLS to %s: no answer among 50 lines", t.Upstream.Address)
}

// upgrade completes the TLS handshake after the upstream agreed to
// STARTTLS, refusing bytes it sent behind its answer.
func (p *Prober) upgrade(conn net.Conn, br *bufio.Reader, t Target) (net.Conn, error) {
	if br.Buffered() > 0 {
		return nil, fmt.Errorf("%s sent bytes after its STARTTLS answer (a man in the middle can inject those)", t.Upstream.Address)
	}
	cfg, err := t.Upstream.ClientTLS()
	if err != nil {
		return nil, err
	}
	tc := tls.Client(conn, cfg)
	if err := tc.Handshake(); err != nil {
		return nil, tlsProblem(t, err)
	}
	return tc, nil
}

// tlsProblem names the keys that decide certificate verification.
func tlsProblem(t Target, err error) error {
	var unknown x509.UnknownAuthorityError
	var host x509.HostnameError
	switch {
	case errors.As(err, &unknown):
		return fmt.Errorf("TLS with %s: the certificate is not signed by a trusted authority: set %s.ca_file to the upstream's CA (%w)",
			t.Upstream.Address, t.Key, err)
	case errors.As(err, &host):
		return fmt.Errorf("TLS with %s: the certificate does not name the host: set %s.server_name (%w)", t.Upstream.Address, t.Key, err)
	}
	return fmt.Errorf("TLS with %s: %w", t.Upstream.Address, err)
}

// maxLine bounds a line the probe reads: greetings and STARTTLS answers
// are short, and an upstream is not trusted to keep them so.
const maxLine = 4096

func readLine(br *bufio.Reader) (string, error) {
	var b []byte
	for {
		chunk, err := br.ReadSlice('\n')
		b = append(b, chunk...)
		switch {
		case len(b) > maxLine:
			return "", fmt.Errorf("a line longer than %d bytes", maxLine)
		case err == nil:
			return strings.TrimRight(string(b), "\r\n"), nil
		case !errors.Is(err, bufio.ErrBufferFull):
			return "", err
		}
	}
}

// bound gives conn's reads and writes timeout, and ends them early when
// ctx ends (a shutdown must not wait for a silent upstream). The caller
// calls the returned stop once done with conn.
func bound(ctx context.Context, conn net.Conn, timeout time.Duration) (stop func() bool) {
	conn.SetDeadline(time.Now().Add(timeout))
	return context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
}

func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// clip bounds an upstream's line in an error, marking the cut.
func clip(s string) string {
	if len(s) > 80 {
		return safetext.Clip(s, 80) + "…"
	}
	return s
}
