package testpeer

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Bounds on a private peer's life. Startup is generous because two
// shared cores running parallel tests can be slow to fork a dozen processes.
const (
	peerStartTimeout = 60 * time.Second
	peerStopTimeout  = 15 * time.Second
	peerStartTries   = 3
	logTailLines     = 40
	authSocketName   = "auth-postfix"
)

// DovecotOptions chooses what a private Dovecot serves. Zero values pick
// defaults.
type DovecotOptions struct {
	// Users maps user name to password; nil means alice and bob with
	// random passwords.
	Users map[string]string
	// MasterUser and MasterPassword default to "master" and a random one.
	MasterUser     string
	MasterPassword string
	// ExtraConfig is appended to the generated dovecot.conf, where later
	// settings override earlier ones.
	ExtraConfig string
}

// DovecotPeer is a running private Dovecot 2.3 instance on loopback.
type DovecotPeer struct {
	IMAPAddr  string // plain, offers STARTTLS
	IMAPSAddr string // implicit TLS
	POP3Addr  string // plain, offers STLS
	POP3SAddr string // implicit TLS

	// MasterUser logs in as any user with SASL PLAIN, authzid = that user.
	MasterUser     string
	MasterPassword string
	Users          map[string]string // user name → password

	// CAFile is the PEM certificate every TLS listener serves; it is
	// self-signed for 127.0.0.1, ::1 and localhost.
	CAFile string
	// LogFile is Dovecot's log, which records e.g. the rip= the proxy
	// announced for its client.
	LogFile string
	// AuthSocket is the path of a Dovecot SASL listener (Postfix's
	// smtpd_sasl_type = dovecot): the users and the master user
	// authenticate there as over IMAP.
	AuthSocket string

	roots     *x509.CertPool // holds CAFile's certificate
	home      string
	ids       dovecotIDs
	delivered atomic.Uint64 // makes maildir file names unique
}

// Dovecot starts a private Dovecot for t and stops it when t ends. It skips
// t when Dovecot is not installed (see RequirePeer).
func Dovecot(t testing.TB, opts DovecotOptions) *DovecotPeer {
	t.Helper()
	bin := RequirePeer(t, "dovecot")
	d, err := startDovecot(t, bin, opts)
	if err != nil {
		t.Fatalf("start dovecot: %v", err)
	}
	return d
}

// startDovecot is Dovecot without the test-goroutine-only calls (Skip,
// Fatal), so several instances can start at once.
func startDovecot(t testing.TB, bin string, opts DovecotOptions) (*DovecotPeer, error) {
	d, conf, err := prepareDovecot(t, opts)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	err = onFreePorts(func() (string, error) {
		if conf.Ports, err = freePorts(); err != nil {
			return "", err
		}
		d.setAddrs(conf.Ports)
		return runDovecot(t, bin, conf, d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

// onFreePorts runs start, which picks free ports and starts a peer on
// them, until it succeeds or fails for another reason than a port in use:
// ports are chosen free but released before the peer binds them, so a
// parallel test can take one in between. A failure carries start's
// diagnostics, the peer's own words.
func onFreePorts(start func() (diag string, err error)) error {
	for try := 1; ; try++ {
		diag, err := start()
		if err == nil {
			return nil
		}
		if try < peerStartTries && strings.Contains(diag, "in use") {
			continue
		}
		return fmt.Errorf("%w\n%s", err, diag)
	}
}

// ClientTLSConfig trusts exactly this instance's certificate (CAFile).
func (d *DovecotPeer) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: d.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

func (d *DovecotPeer) setAddrs(p dovecotPorts) {
	addr := func(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
	d.IMAPAddr, d.IMAPSAddr = addr(p.IMAP), addr(p.IMAPS)
	d.POP3Addr, d.POP3SAddr = addr(p.POP3), addr(p.POP3S)
}

// prepareDovecot writes everything but the ports: accounts, certificate,
// homes, and the directories the unprivileged Dovecot processes must reach.
func prepareDovecot(t testing.TB, opts DovecotOptions) (*DovecotPeer, dovecotConf, error) {
	ids, err := currentDovecotIDs()
	if err != nil {
		return nil, dovecotConf{}, err
	}
	dir := t.TempDir()
	run, err := os.MkdirTemp("", "postern-dovecot-")
	if err != nil {
		return nil, dovecotConf{}, fmt.Errorf("runtime dir: %w", err)
	}
	t.Cleanup(func() { os.RemoveAll(run) })
	// Dovecot wants its base_dir world-readable; it holds only sockets.
	if err := os.Chmod(run, 0o755); err != nil {
		return nil, dovecotConf{}, fmt.Errorf("runtime dir: %w", err)
	}
	d := &DovecotPeer{
		MasterUser: opts.MasterUser, MasterPassword: opts.MasterPassword, Users: opts.Users,
		CAFile: filepath.Join(dir, "ca.pem"), LogFile: filepath.Join(dir, "dovecot.log"),
		AuthSocket: filepath.Join(run, authSocketName),
		home:       filepath.Join(dir, "home"), ids: ids,
	}
	d.applyDefaults()
	conf := dovecotConf{
		ConfFile: filepath.Join(dir, "dovecot.conf"),
		Instance: filepath.Base(run), RunDir: run, AuthSocket: authSocketName,
		StateDir: filepath.Join(dir, "state"), LogFile: d.LogFile,
		CertFile: d.CAFile, KeyFile: filepath.Join(dir, "key.pem"),
		UsersFile: filepath.Join(dir, "users"), MasterFile: filepath.Join(dir, "masters"),
		HomeDir: d.home, IDs: ids, Extra: opts.ExtraConfig,
	}
	if err := d.writeFiles(dir, conf); err != nil {
		return nil, dovecotConf{}, err
	}
	return d, conf, nil
}

func (d *DovecotPeer) applyDefaults() {
	if d.Users == nil {
		d.Users = map[string]string{"alice": rand.Text(), "bob": rand.Text()}
	}
	if d.MasterUser == "" {
		d.MasterUser = "master"
	}
	if d.MasterPassword == "" {
		d.MasterPassword = rand.Text()
	}
}

func (d *DovecotPeer) writeFiles(dir string, conf dovecotConf) error {
	if err := d.makeDirs(dir, conf); err != nil {
		return err
	}
	cert, roots, err := newPeerCert("postern test dovecot")
	if err != nil {
		return err
	}
	d.roots = roots
	users, err := passwdFile(d.Users)
	if err != nil {
		return err
	}
	masters, err := passwdFile(map[string]string{d.MasterUser: d.MasterPassword})
	if err != nil {
		return err
	}
	// The auth process reads the passdbs as the internal user.
	internal := owner{d.ids.InternalUID, d.ids.InternalGID, d.ids.Root}
	files := []struct {
		path string
		data []byte
		own  owner
	}{
		{conf.CertFile, cert.CertPEM, owner{}},
		{conf.KeyFile, cert.KeyPEM, owner{}},
		{conf.UsersFile, users, internal},
		{conf.MasterFile, masters, internal},
	}
	for _, f := range files {
		if err := writeOwned(f.path, f.data, 0o600, f.own); err != nil {
			return err
		}
	}
	if err := os.Chmod(conf.CertFile, 0o644); err != nil {
		return fmt.Errorf("chmod certificate: %w", err)
	}
	return nil
}

// makeDirs creates state and homes. As root, the temp directory and its
// parent (both made 0700 by the testing package) become traversable so the
// dovecot, dovenull and mail users can reach what they need; nothing in
// them becomes readable by others.
func (d *DovecotPeer) makeDirs(dir string, conf dovecotConf) error {
	if d.ids.Root {
		for _, p := range []string{filepath.Dir(dir), dir} {
			if err := os.Chmod(p, 0o711); err != nil {
				return fmt.Errorf("make temp dir traversable: %w", err)
			}
		}
	}
	for _, p := range []string{conf.StateDir, d.home} {
		if err := os.Mkdir(p, 0o711); err != nil {
			return fmt.Errorf("mkdir: %w", err)
		}
	}
	for name := range d.Users {
		if err := validUserName(name); err != nil {
			return err
		}
		if err := d.mkdirMail(filepath.Join(d.home, name)); err != nil {
			return err
		}
	}
	return validUserName(d.MasterUser)
}

// validUserName keeps names safe as passwd-file fields and as directory
// names under home.
func validUserName(name string) error {
	if !userNameRE.MatchString(name) {
		return fmt.Errorf("test user name %q: use letters, digits and . _ @ + -, not starting with a dot", name)
	}
	return nil
}

var userNameRE = regexp.MustCompile(`^[A-Za-z0-9_@+-][A-Za-z0-9._@+-]*$`)

func passwdFile(users map[string]string) ([]byte, error) {
	var b bytes.Buffer
	for name, pass := range users {
		if err := validUserName(name); err != nil {
			return nil, err
		}
		if strings.ContainsAny(pass, ":\r\n\x00") {
			return nil, fmt.Errorf("password of test user %q contains ':', CR, LF or NUL", name)
		}
		fmt.Fprintf(&b, "%s:{PLAIN}%s::::::\n", name, pass)
	}
	return b.Bytes(), nil
}

// owner is who a file must belong to; chown only happens as root.
type owner struct {
	uid, gid int
	chown    bool
}

func writeOwned(path string, data []byte, mode os.FileMode, o owner) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return o.apply(path)
}

func (o owner) apply(path string) error {
	if !o.chown {
		return nil
	}
	if err := os.Chown(path, o.uid, o.gid); err != nil {
		return fmt.Errorf("chown %s: %w", filepath.Base(path), err)
	}
	return nil
}

func (d *DovecotPeer) mailOwner() owner {
	return owner{d.ids.MailUID, d.ids.MailGID, d.ids.Root}
}

// mkdirMail creates a directory the mail processes own, if missing.
func (d *DovecotPeer) mkdirMail(path string) error {
	if err := os.Mkdir(path, 0o700); err != nil {
		if errors.Is(err, os.ErrExist) {
			return nil
		}
		return fmt.Errorf("mkdir: %w", err)
	}
	return d.mailOwner().apply(path)
}

func freePorts() (dovecotPorts, error) {
	p, err := distinctFreePorts(4)
	if err != nil {
		return dovecotPorts{}, err
	}
	return dovecotPorts{IMAP: p[0], IMAPS: p[1], POP3: p[2], POP3S: p[3]}, nil
}

// distinctFreePorts returns n loopback ports that were free a moment ago.
// All stay bound until all are chosen, so they differ.
func distinctFreePorts(n int) ([]int, error) {
	ports := make([]int, n)
	for i := range ports {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find a free port: %w", err)
		}
		defer ln.Close()
		ports[i] = ln.Addr().(*net.TCPAddr).Port
	}
	return ports, nil
}

// runDovecot starts Dovecot in the foreground and waits until it greets on
// IMAP and POP3. On failure it returns Dovecot's own words for the test log.
func runDovecot(t testing.TB, bin string, conf dovecotConf, d *DovecotPeer) (string, error) {
	text, err := conf.render()
	if err != nil {
		return "", err
	}
	if err := writeOwned(conf.ConfFile, text, 0o600, owner{}); err != nil {
		return "", err
	}
	var out LockedBuffer
	cmd := exec.Command(bin, "-F", "-c", conf.ConfFile)
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = peerProcAttr()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	stop := func() { stopProcess(t, cmd, exited, signalProcess(cmd)) }
	if err := waitReady(d, exited); err != nil {
		stop()
		if waitErr != nil {
			err = fmt.Errorf("%w (dovecot: %v)", err, waitErr)
		}
		return diagnostics(out.String(), d.LogFile), err
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("dovecot %s:\n%s", d.IMAPAddr, diagnostics(out.String(), d.LogFile))
		}
	})
	return "", nil
}

// stopProcess asks a peer to shut down with SIGTERM (Dovecot and Postfix's
// master then stop their children), and kills it if it does not. signal
// reaches the peer alone or its whole process group.
func stopProcess(t testing.TB, cmd *exec.Cmd, exited <-chan struct{}, signal func(syscall.Signal) error) {
	select {
	case <-exited:
		return
	default:
	}
	_ = signal(syscall.SIGTERM)
	timer := time.NewTimer(peerStopTimeout)
	defer timer.Stop()
	select {
	case <-exited:
	case <-timer.C:
		t.Errorf("%s (pid %d) ignored SIGTERM for %v; killing it", filepath.Base(cmd.Path), cmd.Process.Pid, peerStopTimeout)
		_ = signal(syscall.SIGKILL)
		<-exited
	}
}

// signalProcess sends sig to cmd's process alone.
func signalProcess(cmd *exec.Cmd) func(syscall.Signal) error {
	return func(sig syscall.Signal) error { return cmd.Process.Signal(sig) }
}

// waitReady polls until both plain listeners greet.
func waitReady(d *DovecotPeer, exited <-chan struct{}) error {
	return waitGreeting("dovecot", exited, func(deadline time.Time) error {
		if err := greets(d.IMAPAddr, "* OK", deadline); err != nil {
			return err
		}
		return greets(d.POP3Addr, "+OK", deadline)
	})
}

// waitGreeting polls check until it passes: peers offer no readiness
// signal, and their listeners exist before the processes that greet do.
func waitGreeting(name string, exited <-chan struct{}, check func(deadline time.Time) error) error {
	deadline := time.Now().Add(peerStartTimeout)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var err error
	for time.Now().Before(deadline) {
		if err = check(deadline); err == nil {
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("%s exited during startup", name)
		case <-tick.C:
		}
	}
	return fmt.Errorf("%s not ready within %v: %w", name, peerStartTimeout, err)
}

func greets(addr, want string, deadline time.Time) error {
	c, err := net.DialTimeout("tcp", addr, time.Until(deadline))
	if err != nil {
		return err
	}
	defer c.Close()
	if err := c.SetDeadline(deadline); err != nil {
		return err
	}
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil {
		return fmt.Errorf("read greeting from %s: %w", addr, err)
	}
	if !strings.HasPrefix(line, want) {
		return fmt.Errorf("greeting from %s is %q, want %q", addr, strings.TrimSpace(line), want)
	}
	return nil
}

// diagnostics is Dovecot's console output and the tail of its log.
func diagnostics(console, logFile string) string {
	var b strings.Builder
	if s := strings.TrimSpace(console); s != "" {
		fmt.Fprintf(&b, "dovecot output:\n%s\n", s)
	}
	if data, err := os.ReadFile(logFile); err == nil {
		lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
		lines = lines[max(0, len(lines)-logTailLines):]
		fmt.Fprintf(&b, "tail of %s:\n%s\n", filepath.Base(logFile), strings.Join(lines, "\n"))
	}
	return b.String()
}

// LockedBuffer collects a child's output, written by exec's copying
// goroutine and read by the test.
type LockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *LockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *LockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}
