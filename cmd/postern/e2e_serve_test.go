package main

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/testpeer"
)

// builtPostern is the postern binary, built once for the tests that run it
// as a separate process, as an operator does.
var builtPostern = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "postern-bin-")
	if err != nil {
		return "", err
	}
	// Readable and executable by every user: one test runs it as nobody.
	if err := os.Chmod(dir, 0o755); err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "postern")
	out, err := exec.Command("go", "build", "-o", bin, "github.com/postern-dev/postern/cmd/postern").CombinedOutput()
	if err != nil {
		return "", errors.New("go build: " + err.Error() + "\n" + string(out))
	}
	return bin, nil
})

// served is a `postern serve` process in front of a private Dovecot.
type served struct {
	t    *testing.T
	bin  string
	dir  string // holds the configuration, the data and the keys
	conf string
	data string
	peer *testpeer.DovecotPeer
	cmd  *exec.Cmd
	// wrap is a command prefix for serve (prlimit, say); exited is closed
	// once the last serve started has ended, with waitErr.
	wrap    []string
	exited  chan struct{}
	waitErr error
	log     *e2eLog
	addrs   map[string]string // listener → address, from the log
	roots   *x509.CertPool
	// secrets are those the test used, for the suite's W6 check; audit is
	// the audit log, read when serve was stopped.
	secrets  []w6Secret
	audit    string
	stopOnce sync.Once
}

var listeningRE = regexp.MustCompile(`msg=listening (?:protocol=(\S+) )?listener=(\S+) addr=(\S+)`)

// startServed writes a configuration, runs `postern serve` and waits until
// it logged every listener it opened.
func startServed(t *testing.T, peer *testpeer.DovecotPeer) *served {
	t.Helper()
	return startServedWith(t, peer, e2eOptions{})
}

// startServedWith is startServed with a configuration shaped by opts.
func startServedWith(t *testing.T, peer *testpeer.DovecotPeer, opts e2eOptions) *served {
	t.Helper()
	s := newServed(t, peer, opts)
	s.cli(t, "", "init")
	s.start(t)
	return s
}

// newServed writes a configuration in a fresh directory; the caller runs
// `init` and start. When the test ends, a running serve is stopped.
func newServed(t *testing.T, peer *testpeer.DovecotPeer, opts e2eOptions) *served {
	t.Helper()
	bin, err := builtPostern()
	if err != nil {
		t.Fatal(err)
	}
	dir, err := os.MkdirTemp("", "postern-serve-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	s := &served{t: t, bin: bin, dir: dir, conf: filepath.Join(dir, "postern.toml"), data: filepath.Join(dir, "data"), peer: peer,
		log: &e2eLog{}, addrs: map[string]string{}}
	for user := range peer.Users {
		s.secrets = append(s.secrets, w6Secret{"master password acting as " + user, peer.MasterUser, peer.MasterPassword, user})
	}
	if err := os.WriteFile(s.conf, []byte(e2eConfigText(t, dir, peer, opts)), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.stop)
	return s
}

// start runs `postern serve` and waits until it logged every listener it
// opened; the addresses are new on each start.
func (s *served) start(t *testing.T) {
	t.Helper()
	listening := s.spawn(t)
	select {
	case <-listening:
	case <-s.exited:
		t.Fatalf("postern serve exited before it opened its listeners (%v):\n%s", s.waitErr, s.log)
	case <-time.After(e2eWait):
		t.Fatalf("postern serve did not open its listeners:\n%s", s.log)
	}
	pem, err := os.ReadFile(filepath.Join(s.data, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	s.roots = x509.NewCertPool()
	s.roots.AppendCertsFromPEM(pem)
}

// spawn runs `postern serve` and returns at once; the channel is closed
// once it logged its last listener.
func (s *served) spawn(t *testing.T) <-chan struct{} {
	t.Helper()
	argv := append(append([]string(nil), s.wrap...), s.bin, "serve", "-c", s.conf)
	s.cmd = exec.Command(argv[0], argv[1:]...)
	s.cmd.Stdout = s.log
	pipe, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	s.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s.exited = make(chan struct{})
	listening := make(chan struct{})
	logged := make(chan struct{})
	go func() {
		s.readLog(pipe, listening)
		close(logged)
	}()
	go func(cmd *exec.Cmd, exited chan struct{}) {
		<-logged // Wait closes the pipe: read it to the end first
		s.waitErr = cmd.Wait()
		close(exited)
	}(s.cmd, s.exited)
	return listening
}

// restart stops serve as an init system does and starts it again.
func (s *served) restart(t *testing.T) {
	t.Helper()
	s.stopServe()
	s.start(t)
}

// kill ends serve with SIGKILL, as a crash or the OOM killer does, and
// waits until it is gone.
func (s *served) kill(t *testing.T) {
	t.Helper()
	s.cmd.Process.Kill()
	select {
	case <-s.exited:
	case <-time.After(e2eWait):
		t.Fatal("postern serve outlived SIGKILL")
	}
}

// running reports whether the last serve started is still running.
func (s *served) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// readLog keeps serve's log and notes each listener it logged; listening
// is closed once the control socket, the last to open, is there.
func (s *served) readLog(r io.Reader, listening chan struct{}) {
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		line := sc.Text()
		s.log.Write([]byte(line + "\n"))
		if m := listeningRE.FindStringSubmatch(line); m != nil {
			s.log.mu.Lock()
			s.addrs[m[2]] = m[3]
			s.log.mu.Unlock()
			if m[2] == "control" && listening != nil {
				close(listening)
				listening = nil
			}
		}
	}
}

// waitLog waits until serve logged a line matching re; the server logs
// after it answered, so the log may trail the client.
func (s *served) waitLog(t *testing.T, re *regexp.Regexp) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !re.MatchString(s.log.String()) {
		if time.Now().After(deadline) {
			t.Fatalf("serve never logged %s", re)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (s *served) addr(name string) string {
	s.log.mu.Lock()
	defer s.log.mu.Unlock()
	return s.addrs[name]
}

// stop hands the logs to the suite's W6 check, ends serve with SIGTERM,
// as an init system does, and shows its log when the test failed.
func (s *served) stop() {
	s.stopOnce.Do(s.stopServe)
}

func (s *served) stopServe() {
	if s.running() {
		audit, _, err := s.run("", nil, "audit", "tail", "-n", "100000", "--json")
		if err != nil {
			s.t.Errorf("audit tail before stopping: %v", err)
		}
		s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
			if s.waitErr != nil {
				s.t.Errorf("postern serve: %v", s.waitErr)
			}
		case <-time.After(e2eWait):
			s.cmd.Process.Kill()
			s.t.Error("postern serve ignored SIGTERM")
		}
		s.audit = audit
	}
	w6Seen.add(w6Record{test: s.t.Name(), logs: s.log.String(), audit: s.audit, secrets: s.secrets})
	if s.t.Failed() {
		s.t.Logf("postern serve log:\n%s", s.log)
	}
}

// cli runs the postern binary with args (and -c) as the current user,
// fails the test unless it succeeds, and returns its stdout.
func (s *served) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	out, errs, err := s.run(stdin, nil, args...)
	if err != nil {
		t.Fatalf("postern %s: %v\nstdout: %s\nstderr: %s", strings.Join(args, " "), err, out, errs)
	}
	return out
}

// run runs the binary, under wrap (a command prefix such as setpriv) when
// set.
func (s *served) run(stdin string, wrap []string, args ...string) (stdout, stderr string, err error) {
	argv := append(append(append([]string(nil), wrap...), s.bin), append(args, "-c", s.conf)...)
	cmd := exec.Command(argv[0], argv[1:]...)
	var out, errb bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = strings.NewReader(stdin), &out, &errb
	err = cmd.Run()
	return out.String(), errb.String(), err
}

// dialTLS connects to one of serve's implicit-TLS listeners ("pop3s",
// "smtps") and returns the raw client.
func (s *served) dialTLS(t *testing.T, listener string) *wire {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", s.addr(listener), s.clientTLS())
	if err != nil {
		t.Fatalf("dial %s: %v", listener, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &wire{t: t, conn: conn, r: bufio.NewReader(conn)}
}

func (s *served) clientTLS() *tls.Config {
	return &tls.Config{RootCAs: s.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (s *served) dialIMAP(t *testing.T) (*imapclient.Client, *recorder) {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", s.addr("imaps"), s.clientTLS())
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	rec := &recorder{Conn: conn}
	c := imapclient.New(rec, nil)
	t.Cleanup(func() { c.Close() })
	return c, rec
}

func (s *served) imapTry(t *testing.T, user, secret string) string {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", s.addr("imaps"), s.clientTLS())
	if err != nil {
		t.Fatalf("dial imaps: %v", err)
	}
	defer conn.Close()
	w := &wire{t: t, conn: conn, r: bufio.NewReader(conn)}
	w.expect("* OK")
	return w.imapLogin("a", user, secret)
}

// TestServe_ControlSocket: with `postern serve` running as its own process
// in front of real Dovecot, the CLI works through the control socket and
// its changes reach live sessions: `app-password revoke` ends an IMAP IDLE
// session within a second (P10) and the next login with it
// fails; `user add`, `sessions list` and `audit tail` work while serving.
func TestServe_ControlSocket(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "carol")
	s := startServed(t, peer)
	for _, l := range []string{"imaps", "imap", "pop3s", "pop3", "admin", "control"} {
		if s.addr(l) == "" {
			t.Errorf("serve did not log listener %s:\n%s", l, s.log)
		}
	}
	if !regexp.MustCompile(`msg=listening protocol=imap listener=imaps addr=127\.0\.0\.1:\d+ tls=implicit`).MatchString(s.log.String()) {
		t.Errorf("the IMAP listener's log line does not name its protocol and address:\n%s", s.log)
	}
	st, err := os.Stat(filepath.Join(s.data, "control.sock"))
	if err != nil || st.Mode().Type() != os.ModeSocket || st.Mode().Perm() != 0o600 {
		t.Fatalf("control socket: %v, %v", st.Mode(), err)
	}

	password := "carol-account-password"
	if out := s.cli(t, password+"\n", "user", "add", "carol", "--password-stdin"); !strings.Contains(out, "created user carol") {
		t.Errorf("user add: %q", out)
	}
	secret := strings.TrimSpace(s.cli(t, "", "app-password", "create", "carol", "--name", "Thunderbird"))
	typed := strings.ReplaceAll(secret, " ", "")
	s.secrets = append(s.secrets, w6Secret{"account password of carol", "carol", password, ""},
		w6Secret{"app password of carol", "carol", typed, ""})
	var aps []authstore.AppPassword
	if err := json.Unmarshal([]byte(s.cli(t, "", "app-password", "list", "carol", "--json")), &aps); err != nil || len(aps) != 1 {
		t.Fatalf("app-password list: %v %v", aps, err)
	}

	c, rec := s.dialIMAP(t)
	startIdle(t, c, "carol", typed)
	var live []api.LiveSession
	if err := json.Unmarshal([]byte(s.cli(t, "", "sessions", "list", "--json")), &live); err != nil {
		t.Fatalf("sessions list: %v", err)
	}
	if len(live) != 1 || live[0].User != "carol" || live[0].AppPasswordID != aps[0].ID ||
		live[0].AppPasswordName != "Thunderbird" || live[0].Protocol != authstore.IMAP || live[0].BytesOut == 0 {
		t.Fatalf("sessions list: %+v", live)
	}
	if out := s.cli(t, "", "sessions", "list"); !strings.Contains(out, "Thunderbird ("+aps[0].ID+")") {
		t.Errorf("sessions list table:\n%s", out)
	}

	start := time.Now()
	s.cli(t, "", "app-password", "revoke", "carol", aps[0].ID)
	waitClosed(t, c, start, kickLimit)
	if !strings.Contains(rec.String(), "\r\n* BYE ") {
		t.Errorf("the IMAP client got no BYE:\n%s", rec.String())
	}
	if got := s.imapTry(t, "carol", typed); got != imapFailure {
		t.Errorf("login with the revoked app password: %q", got)
	}
	if out := s.cli(t, "", "sessions", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions after the revocation: %s", out)
	}

	tail := s.cli(t, "", "audit", "tail", "-n", "20", "--json")
	var evs []authstore.Event
	if err := json.Unmarshal([]byte(tail), &evs); err != nil {
		t.Fatal(err)
	}
	revoked := false
	for _, e := range evs {
		revoked = revoked || (e.Kind == "apppw.revoke" && e.User == "carol" && e.Actor == cliActor())
	}
	if !revoked {
		t.Errorf("audit tail has no revocation by %s:\n%s", cliActor(), tail)
	}
	if strings.Contains(s.log.String(), "upstream probe failed") {
		t.Errorf("a good upstream failed its probe:\n%s", s.log)
	}
}

// TestServe_ControlSocketRefusesOtherUsers: a client running as another
// user cannot use the control socket: the data directory and the socket's
// mode keep it out, and when an operator loosens both, the server still
// refuses it by its peer credentials.
func TestServe_ControlSocketRefusesOtherUsers(t *testing.T) {
	t.Parallel()
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("setpriv not installed")
	}
	asNobody := []string{setpriv, "--reuid=nobody", "--regid=nogroup", "--clear-groups"}
	peer := startPeer(t, "dave")
	s := startServed(t, peer)
	s.cli(t, "dave-password\n", "user", "add", "dave", "--password-stdin")
	s.secrets = append(s.secrets, w6Secret{"account password of dave", "dave", "dave-password", ""})

	out, errs, err := s.run("", asNobody, "user", "list")
	if err == nil || strings.Contains(out, "dave") {
		t.Fatalf("nobody listed users: %q %q", out, errs)
	}
	if !strings.Contains(errs, "permission denied") {
		t.Errorf("nobody, locked out by the modes: %q", errs)
	}

	// Loosened by hand: only the server's own check is left.
	sock := filepath.Join(s.data, "control.sock")
	if err := errors.Join(os.Chmod(s.data, 0o711), os.Chmod(sock, 0o666)); err != nil {
		t.Fatal(err)
	}
	out, errs, err = s.run("", asNobody, "user", "list")
	if err == nil || strings.Contains(out, "dave") {
		t.Fatalf("nobody listed users through a world-writable socket: %q %q", out, errs)
	}
	if !strings.Contains(errs, "closed the connection") {
		t.Errorf("nobody, refused by the server: %q", errs)
	}
	s.waitLog(t, regexp.MustCompile(`control socket: refused a peer.* uid=65534`))
	if out := s.cli(t, "", "user", "list"); !strings.Contains(out, "dave") {
		t.Errorf("root after the refusal: %q", out)
	}
}

// envCount is a count from the environment variable name, def when it is
// unset; anything below least fails the test.
func envCount(t *testing.T, name string, def, least int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < least {
		t.Fatalf("%s=%q: want a number of at least %d", name, v, least)
	}
	return n
}

// withStore opens the store as the CLI does while no server runs.
func (s *served) withStore(t *testing.T, fn func(*authstore.Store)) {
	t.Helper()
	data, err := os.ReadFile(s.conf)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse(data, s.conf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := st.Close(); err != nil {
			t.Fatal(err)
		}
	}()
	fn(st)
}

// rawIMAPLogin logs in over implicit TLS from src and returns the tagged
// answer, or the error that kept it from arriving.
func rawIMAPLogin(s *served, src, user, secret string) (string, error) {
	return imapLoginWithin(s, src, user, secret, e2eIO)
}

// imapLoginWithin is rawIMAPLogin waiting up to patience for the answer.
func imapLoginWithin(s *served, src, user, secret string, patience time.Duration) (string, error) {
	conn, err := tls.DialWithDialer(dialer(src), "tcp", s.addr("imaps"), s.clientTLS())
	if err != nil {
		return "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(patience))
	r := bufio.NewReader(conn)
	if _, err := r.ReadString('\n'); err != nil {
		return "", err
	}
	if _, err := fmt.Fprintf(conn, "a LOGIN %q %q\r\n", user, secret); err != nil {
		return "", err
	}
	for {
		line, err := r.ReadString('\n')
		if err != nil || strings.HasPrefix(line, "a ") {
			return line, err
		}
	}
}
