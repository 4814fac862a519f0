package main

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/testpeer"
)

// The interop suite drives real clients through a whole gateway
// (startGateway, as `postern serve` runs it) to a private Dovecot. Each test
// builds its own gateway so that budgets, policy and revocations of one
// test never leak into another.

// Bounds on waiting in these tests: generous, because two shared cores
// running the race detector and several Dovecots can be slow, and never
// used to synchronise, only to fail instead of hanging.
const (
	e2eIO   = 20 * time.Second // one read or write on a client socket
	e2eWait = 10 * time.Second // polling for a state to appear
	// kickLimit is the promise of A8 and P10: a revoked
	// session is gone within one second.
	kickLimit = time.Second
)

// e2eAccount is a user that exists in Dovecot and in postern's store.
type e2eAccount struct {
	name        string
	password    string // the account password in postern
	appPassword string // as a user types it: no spaces
	appPassID   string
	totpSecret  string // empty when two-step verification is off
}

// e2eOptions shape one gateway. Zero values take the peer's settings.
type e2eOptions struct {
	users []string // accounts to create; each must be a Dovecot user
	totp  []string // the accounts among users with two-step verification on
	// limits are extra lines for the [limits] table.
	limits []string
	// imapUpstream and pop3Upstream replace the peer's addresses.
	imapUpstream, pop3Upstream string
	// caFile replaces the peer's certificate as the upstreams' trust root.
	caFile string
	// security replaces "starttls" as both upstreams' security.
	security string
	// masterPassword replaces the peer's in the master password file.
	masterPassword string
	stored         bool // login = "stored": each user's upstream password, no master user
	smtp           e2eSMTP
}

// e2e is one running gateway in front of one Dovecot.
type e2e struct {
	peer     *testpeer.DovecotPeer
	g        *gateway
	certFile string // the gateway's self-signed certificate
	roots    *x509.CertPool
	accounts map[string]*e2eAccount
	logs     *e2eLog
	// extraSecrets are secrets made after the accounts, for W6.
	extraSecrets []w6Secret
	stopOnce     sync.Once
	stopErr      error
}

// startPeer starts a private Dovecot with the named users.
func startPeer(t *testing.T, users ...string) *testpeer.DovecotPeer {
	t.Helper()
	m := make(map[string]string, len(users))
	for _, u := range users {
		m[u] = rand.Text()
	}
	return testpeer.Dovecot(t, testpeer.DovecotOptions{Users: m})
}

// startE2E starts a gateway from a TOML configuration, as an operator
// would write it, and creates the accounts.
func startE2E(t *testing.T, peer *testpeer.DovecotPeer, opts e2eOptions) *e2e {
	t.Helper()
	dir := t.TempDir()
	cfg, err := config.Parse([]byte(e2eConfigText(t, dir, peer, opts)), "e2e.toml")
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	e := &e2e{peer: peer, accounts: map[string]*e2eAccount{}, logs: &e2eLog{}}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if e.g, err = startGateway(cfg, log); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		audit := e.auditText()
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		if err := e.shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		w6Seen.add(w6Record{test: t.Name(), logs: e.logs.String(), audit: audit, secrets: e.secretsUsed()})
		if t.Failed() {
			t.Logf("gateway log:\n%s", e.logs.String())
		}
	})
	e.certFile = filepath.Join(cfg.DataDir, "tls", "cert.pem")
	pem, err := os.ReadFile(e.certFile)
	if err != nil {
		t.Fatalf("gateway certificate: %v", err)
	}
	e.roots = x509.NewCertPool()
	if !e.roots.AppendCertsFromPEM(pem) {
		t.Fatalf("no certificate in %s", e.certFile)
	}
	for _, name := range opts.users {
		e.accounts[name] = e.createAccount(t, name, slices.Contains(opts.totp, name))
	}
	return e
}

// e2eConfigText is the gateway's configuration file.
func e2eConfigText(t *testing.T, dir string, peer *testpeer.DovecotPeer, opts e2eOptions) string {
	t.Helper()
	masterFile := filepath.Join(dir, "master-password")
	master := cmp.Or(opts.masterPassword, peer.MasterPassword)
	if err := os.WriteFile(masterFile, []byte(master+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	imapUp, pop3Up, ca, security := peer.IMAPAddr, peer.POP3Addr, peer.CAFile, "starttls"
	if opts.imapUpstream != "" {
		imapUp = opts.imapUpstream
	}
	if opts.pop3Upstream != "" {
		pop3Up = opts.pop3Upstream
	}
	if opts.caFile != "" {
		ca = opts.caFile
	}
	if opts.security != "" {
		security = opts.security
	}
	q := strconv.Quote
	upstream := func(addr, extra string) string {
		return fmt.Sprintf("address = %s\nsecurity = %s\nca_file = %s\n%s\n%s\n",
			q(addr), q(security), q(ca), e2eLogin(opts, peer, masterFile), extra)
	}
	// Every test logs in from loopback; the per-source delay is kept out of
	// the way (A1 keys its sources by /32 and uses 127.0.0.2 and .3).
	return fmt.Sprintf(`data_dir = %s
key_file = %s

[tls]
self_signed = true

[imap]
listen_tls = "127.0.0.1:0"
listen_starttls = "127.0.0.1:0"

[pop3]
listen_tls = "127.0.0.1:0"
listen_stls = "127.0.0.1:0"

[admin]
listen = "127.0.0.1:0"
public_url = "https://mail.example.org/account"
tls = false

[upstream.imap]
%s
[upstream.pop3]
%s
[limits]
%s
`, q(filepath.Join(dir, "data")), q(filepath.Join(dir, "keys", "postern.key")),
		upstream(imapUp, "send_id = true"), upstream(pop3Up, "xclient = true"), limitLines(opts.limits)) +
		opts.smtp.config(peer, masterFile)
}

// limitLines is the [limits] table: the test's lines, plus the defaults
// that keep the per-source delay out of the way for keys it did not set.
func limitLines(lines []string) string {
	out := slices.Clone(lines)
	for _, def := range []string{"source_free_failures = 1000", `source_delay = "10ms"`} {
		key, _, _ := strings.Cut(def, " =")
		if !slices.ContainsFunc(lines, func(l string) bool { return strings.HasPrefix(l, key+" ") }) {
			out = append(out, def)
		}
	}
	return strings.Join(out, "\n")
}

// createAccount adds a user with an account password and an app password,
// and turns two-step verification on, confirmed with a real code, when asked.
func (e *e2e) createAccount(t *testing.T, name string, twoStep bool) *e2eAccount {
	t.Helper()
	ctx := e2eCtx()
	st := e.g.store
	a := &e2eAccount{name: name, password: rand.Text()}
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: a.password}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	if twoStep {
		enr, err := st.BeginTOTP(ctx, name)
		if err != nil {
			t.Fatalf("begin TOTP for %s: %v", name, err)
		}
		code, err := totp.GenerateCode(enr.Secret, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.ConfirmTOTP(ctx, name, code); err != nil {
			t.Fatalf("confirm TOTP for %s: %v", name, err)
		}
		a.totpSecret = enr.Secret
	}
	a.appPassID, a.appPassword = e.newAppPassword(t, name)
	return a
}

// newAppPassword creates an app password and returns it as typed: the
// grouped form without its spaces.
func (e *e2e) newAppPassword(t *testing.T, user string) (id, secret string) {
	t.Helper()
	ap, grouped, err := e.g.store.CreateAppPassword(e2eCtx(), user, authstore.NewAppPassword{Name: "mail app"})
	if err != nil {
		t.Fatalf("create app password for %s: %v", user, err)
	}
	e.extraSecrets = append(e.extraSecrets, w6Secret{"app password " + ap.ID + " of " + user, user, strings.ReplaceAll(grouped, " ", ""), ""})
	return ap.ID, strings.ReplaceAll(grouped, " ", "")
}

func e2eCtx() context.Context {
	return authstore.WithActor(context.Background(), authstore.Actor{Name: "e2e"})
}

// shutdown stops the gateway once; later calls return the first result.
func (e *e2e) shutdown(ctx context.Context) error {
	e.stopOnce.Do(func() { e.stopErr = e.g.shutdown(ctx) })
	return e.stopErr
}

func (e *e2e) account(name string) *e2eAccount { return e.accounts[name] }

// addr is the bound address of a gateway listener ("imaps", "pop3", ...).
func (e *e2e) addr(name string) string { return e.g.addrs[name] }

// clientTLS trusts exactly the gateway's self-signed certificate.
func (e *e2e) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// dialer connects from src, a loopback address such as 127.0.0.2, so a
// test can play several client sources; "" lets the system choose.
func dialer(src string) *net.Dialer {
	d := &net.Dialer{Timeout: e2eIO}
	if src != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(src)}
	}
	return d
}

// dialIMAP logs in nobody: it returns a go-imap client on the implicit-TLS
// listener, connected from src, whose received bytes are kept in rec.
func (e *e2e) dialIMAP(t *testing.T, src string, h *imapclient.UnilateralDataHandler) (*imapclient.Client, *recorder) {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(src), "tcp", e.addr("imaps"), e.clientTLS())
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	rec := &recorder{Conn: conn}
	c := imapclient.New(rec, &imapclient.Options{UnilateralDataHandler: h})
	t.Cleanup(func() { c.Close() })
	return c, rec
}

// recorder keeps what the server sent, so a test can look for the exact
// BYE line the client library consumed.
type recorder struct {
	net.Conn
	mu  sync.Mutex
	got bytes.Buffer
}

func (r *recorder) Read(p []byte) (int, error) {
	n, err := r.Conn.Read(p)
	r.mu.Lock()
	r.got.Write(p[:n])
	r.mu.Unlock()
	return n, err
}

func (r *recorder) String() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String()
}

// waitClosed waits up to twice limit for the client's connection to end
// and fails unless it ended within limit.
func waitClosed(t *testing.T, c *imapclient.Client, start time.Time, limit time.Duration) {
	t.Helper()
	timer := time.NewTimer(2 * limit)
	defer timer.Stop()
	select {
	case <-c.Closed():
		if took := time.Since(start); took > limit {
			t.Errorf("session ended after %v, want within %v", took, limit)
		}
	case <-timer.C:
		t.Fatalf("session still open %v after the change", 2*limit)
	}
}

// wire is a raw line-oriented client connection.
type wire struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

// dialWire connects to a gateway listener from src; implicit-TLS listeners
// ("imaps", "pop3s") get a verified handshake.
func (e *e2e) dialWire(t *testing.T, listener, src string) *wire {
	t.Helper()
	var conn net.Conn
	var err error
	if strings.HasSuffix(listener, "s") {
		conn, err = tls.DialWithDialer(dialer(src), "tcp", e.addr(listener), e.clientTLS())
	} else {
		conn, err = dialer(src).Dial("tcp", e.addr(listener))
	}
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wire{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// startTLS upgrades the connection after the server agreed to STARTTLS/STLS.
func (w *wire) startTLS(cfg *tls.Config) {
	w.t.Helper()
	if w.r.Buffered() > 0 {
		w.t.Fatalf("%d bytes arrived before the TLS handshake", w.r.Buffered())
	}
	tc := tls.Client(w.conn, cfg)
	tc.SetDeadline(time.Now().Add(e2eIO))
	if err := tc.Handshake(); err != nil {
		w.t.Fatalf("TLS handshake: %v", err)
	}
	tc.SetDeadline(time.Time{})
	w.conn, w.r = tc, bufio.NewReader(tc)
}

// send writes the lines as one write, each ended with CRLF.
func (w *wire) send(lines ...string) {
	w.t.Helper()
	w.conn.SetWriteDeadline(time.Now().Add(e2eIO))
	if _, err := io.WriteString(w.conn, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		w.t.Fatalf("write: %v", err)
	}
}

// line reads one line, CRLF included.
func (w *wire) line() string {
	w.t.Helper()
	w.conn.SetReadDeadline(time.Now().Add(e2eIO))
	s, err := w.r.ReadString('\n')
	if err != nil {
		w.t.Fatalf("read: %v (after %q)", err, s)
	}
	return s
}

// expect reads one line and fails unless it starts with prefix.
func (w *wire) expect(prefix string) string {
	w.t.Helper()
	s := w.line()
	if !strings.HasPrefix(s, prefix) {
		w.t.Fatalf("got %q, want a line starting with %q", s, prefix)
	}
	return s
}

// tagged reads IMAP responses up to the completion of tag and returns it;
// literals in untagged data are read through.
func (w *wire) tagged(tag string) string {
	w.t.Helper()
	for {
		s := w.line()
		if strings.HasPrefix(s, tag+" ") {
			return s
		}
		if n, ok := literalLen(s); ok {
			w.conn.SetReadDeadline(time.Now().Add(e2eIO))
			if _, err := io.CopyN(io.Discard, w.r, n); err != nil {
				w.t.Fatalf("read literal: %v", err)
			}
		}
	}
}

var literalRE = regexp.MustCompile(`\{(\d+)\}\r\n$`)

func literalLen(line string) (int64, bool) {
	m := literalRE.FindStringSubmatch(line)
	if m == nil {
		return 0, false
	}
	n, err := strconv.ParseInt(m[1], 10, 64)
	return n, err == nil
}

// closedWithin reads until the server closes the connection, with a read
// deadline of twice limit, and fails unless that took at most limit. It
// returns what arrived meanwhile.
func (w *wire) closedWithin(start time.Time, limit time.Duration) string {
	w.t.Helper()
	w.conn.SetReadDeadline(start.Add(2 * limit))
	got, err := io.ReadAll(w.r)
	took := time.Since(start)
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		w.t.Fatalf("connection still open %v after the change (got %q)", took, got)
	case took > limit:
		w.t.Errorf("connection closed after %v, want within %v", took, limit)
	}
	return string(got)
}

// imapLogin sends LOGIN with quoted arguments and returns the completion.
func (w *wire) imapLogin(tag, user, secret string) string {
	w.t.Helper()
	w.send(fmt.Sprintf("%s LOGIN %q %q", tag, user, secret))
	return w.tagged(tag)
}

// pop3Login sends USER and PASS and returns the answer to PASS.
func (w *wire) pop3Login(user, secret string) string {
	w.t.Helper()
	w.send("USER " + user)
	w.expect("+OK")
	w.send("PASS " + secret)
	return w.line()
}

// imapTry logs in on a fresh implicit-TLS connection from src and returns
// the tagged answer; the connection is closed afterwards.
func (e *e2e) imapTry(t *testing.T, src, user, secret string) string {
	t.Helper()
	w := e.dialWire(t, "imaps", src)
	defer w.conn.Close()
	w.expect("* OK")
	return w.imapLogin("a", user, secret)
}

// pop3Try is imapTry for POP3.
func (e *e2e) pop3Try(t *testing.T, src, user, secret string) string {
	t.Helper()
	w := e.dialWire(t, "pop3s", src)
	defer w.conn.Close()
	w.expect("+OK")
	return w.pop3Login(user, secret)
}

// metric reads one sample from the admin listener's /metrics, 0 when absent.
func (e *e2e) metric(t *testing.T, series string) float64 {
	t.Helper()
	code, body := e.adminGet(t, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("metric %s: %v", line, err)
			}
			return f
		}
	}
	return 0
}

// adminGet reads path from the admin listener.
func (e *e2e) adminGet(t *testing.T, path string) (int, []byte) {
	t.Helper()
	client := &http.Client{Timeout: e2eIO}
	defer client.CloseIdleConnections()
	resp, err := client.Get("http://" + e.addr("admin") + path)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: %v", path, err)
	}
	return resp.StatusCode, body
}

// waitForPeerLog polls Dovecot's log, written by its own log process, until
// it contains want.
func waitForPeerLog(t *testing.T, peer *testpeer.DovecotPeer, want string) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		data, _ := os.ReadFile(peer.LogFile)
		if bytes.Contains(data, []byte(want)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("dovecot never logged %q; log:\n%s", want, data)
		}
		<-tick.C
	}
}

var loginRE = regexp.MustCompile(`msg=login protocol=\w+ session=([0-9a-f]+) .*result=ok`)

// waitSessionIDsInPeerLog checks that Dovecot logged, for every successful
// login through the gateway, postern's own session id (IMAP ID
// x-session-id, POP3 XCLIENT SESSION), so the two logs can be joined.
func (e *e2e) waitSessionIDsInPeerLog(t *testing.T, want int) {
	t.Helper()
	logins := loginRE.FindAllStringSubmatch(e.logs.String(), -1)
	if len(logins) != want {
		t.Fatalf("the gateway logged %d successful logins, want %d", len(logins), want)
	}
	for _, m := range logins {
		waitForPeerLog(t, e.peer, "session=<"+m[1]+">")
	}
}

// e2eLog collects the gateway's log for the secret check and for failures.
type e2eLog struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (l *e2eLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.Write(p)
}

func (l *e2eLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// message is a delivered test message with CRLF line ends, as on the wire;
// lines starting with a dot exercise POP3 dot-stuffing.
func message(subject string, bodyLines ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: Dana Kim <dana@example.org>\r\nTo: user@example.org\r\nSubject: %s\r\n", subject)
	fmt.Fprintf(&b, "Date: Tue, 03 Feb 2026 11:42:17 +0100\r\nMessage-ID: <%s@example.org>\r\n\r\n", rand.Text())
	for _, l := range bodyLines {
		b.WriteString(l + "\r\n")
	}
	return []byte(b.String())
}
