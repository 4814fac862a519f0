package testpeer

import (
	"cmp"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/linetest"
)

// PostfixOptions chooses what a private Postfix serves. Zero values pick
// defaults.
type PostfixOptions struct {
	// Dovecot answers Postfix's SASL questions (AUTH, including a master
	// user's AUTH PLAIN with an authorization identity); nil starts one
	// with its default users.
	Dovecot *DovecotPeer
	// ExtraConfig is appended to the generated main.cf, where a later
	// setting overrides an earlier one (e.g. "message_size_limit = 0").
	ExtraConfig string
}

// PostfixPeer is a running private Postfix on loopback: a submission
// smtpd that offers STARTTLS and AUTH (SASL by Dovecot), and one that
// speaks TLS at once; both take XCLIENT from 127.0.0.1, relays only for authenticated users, lets each user send
// only as its own local part (alice as alice@…), and delivers every message
// into one catch-all maildir.
type PostfixPeer struct {
	Addr    string       // smtpd: plaintext, offers STARTTLS
	TLSAddr string       // smtpd with TLS from the first byte (submissions, RFC 8314)
	CAFile  string       // PEM certificate smtpd serves (127.0.0.1, localhost)
	LogFile string       // Postfix's maillog_file
	Dovecot *DovecotPeer // the SASL backend

	roots   *x509.CertPool
	mailDir string // catchall maildir
}

// Postfix starts a private Postfix for t and stops it when t ends. It skips
// t when Postfix is not installed or the test does not run as root
// (Postfix's master insists on it), unless POSTERN_REQUIRE_PEERS=1 makes
// either a failure.
func Postfix(t testing.TB, opts PostfixOptions) *PostfixPeer {
	t.Helper()
	master := requirePostfix(t)
	if opts.Dovecot == nil {
		opts.Dovecot = Dovecot(t, DovecotOptions{})
	}
	p, err := startPostfix(t, master, opts)
	if err != nil {
		t.Fatalf("start postfix: %v", err)
	}
	return p
}

// requirePostfix returns the path of Postfix's master daemon.
func requirePostfix(t testing.TB) string {
	t.Helper()
	postconf := RequirePeer(t, "postconf")
	if os.Geteuid() != 0 {
		requireOrSkip(t, "postfix runs only as root (its master changes user)")
	}
	out, err := exec.Command(postconf, "-d", "-h", "daemon_directory").Output()
	if err != nil {
		t.Fatalf("postconf daemon_directory: %v", err)
	}
	master := filepath.Join(strings.TrimSpace(string(out)), "master")
	if _, err := os.Stat(master); err != nil {
		requireOrSkip(t, "postfix master not found: "+err.Error()+"; run scripts/install-peers")
	}
	return master
}

// ClientTLSConfig trusts exactly this instance's certificate (CAFile).
func (p *PostfixPeer) ClientTLSConfig() *tls.Config {
	return &tls.Config{RootCAs: p.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// startPostfix is Postfix without the test-goroutine-only calls.
func startPostfix(t testing.TB, master string, opts PostfixOptions) (*PostfixPeer, error) {
	p, conf, err := preparePostfix(t, opts)
	if err != nil {
		return nil, fmt.Errorf("prepare: %w", err)
	}
	err = onFreePorts(func() (string, error) {
		ports, err := distinctFreePorts(2)
		if err != nil {
			return "", err
		}
		conf.Port, conf.TLSPort = ports[0], ports[1]
		p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(conf.Port))
		p.TLSAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(conf.TLSPort))
		return runPostfix(t, master, conf, p)
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}

// preparePostfix writes everything but the port.
func preparePostfix(t testing.TB, opts PostfixOptions) (*PostfixPeer, postfixConf, error) {
	ids, err := postfixIDs()
	if err != nil {
		return nil, postfixConf{}, err
	}
	dir := t.TempDir()
	// The virtual delivery agent writes the maildir as the mail user, so
	// the path to it must be traversable; nothing becomes readable.
	for _, d := range []string{filepath.Dir(dir), dir} {
		if err := os.Chmod(d, 0o711); err != nil {
			return nil, postfixConf{}, fmt.Errorf("make temp dir traversable: %w", err)
		}
	}
	conf := postfixConf{
		Dir: dir, QueueDir: filepath.Join(dir, "queue"), DataDir: filepath.Join(dir, "data"),
		LogFile: filepath.Join(dir, "maillog"), MailBase: filepath.Join(dir, "mail"),
		SendersMap: filepath.Join(dir, "senders"), CertFile: filepath.Join(dir, "cert.pem"),
		KeyFile: filepath.Join(dir, "key.pem"), AuthSocket: opts.Dovecot.AuthSocket,
		MailUID: ids.mail.uid, MailGID: ids.mail.gid, Extra: opts.ExtraConfig,
	}
	p := &PostfixPeer{CAFile: conf.CertFile, LogFile: conf.LogFile, Dovecot: opts.Dovecot,
		mailDir: filepath.Join(conf.MailBase, "catchall")}
	if err := p.writeFiles(conf, ids); err != nil {
		return nil, postfixConf{}, err
	}
	return p, conf, nil
}

// postfixOwners are the accounts the instance's files belong to.
type postfixOwners struct {
	owner owner // mail_owner: the queue's private parts and data_directory
	drop  owner // mail_owner with setgid_group: maildrop and public
	mail  owner // the virtual delivery agent's user: the maildir
}

// postfixIDs looks up the Debian package's postfix user and postdrop
// group, and nobody for the delivered mail.
func postfixIDs() (postfixOwners, error) {
	uid, gid, err := lookupIDs("postfix", "postfix")
	if err != nil {
		return postfixOwners{}, err
	}
	g, err := user.LookupGroup("postdrop")
	if err != nil {
		return postfixOwners{}, fmt.Errorf("postfix needs group postdrop (created by the postfix package): %w", err)
	}
	dropGID, err := strconv.Atoi(g.Gid)
	if err != nil {
		return postfixOwners{}, fmt.Errorf("gid of postdrop: %w", err)
	}
	mailUID, mailGID, err := lookupIDs("nobody", "base-passwd")
	if err != nil {
		return postfixOwners{}, err
	}
	return postfixOwners{
		owner: owner{uid, gid, true}, drop: owner{uid, dropGID, true}, mail: owner{mailUID, mailGID, true},
	}, nil
}

// writeFiles lays out the configuration, the certificate and the queue as
// Postfix's own post-install would (postfix-files): the queue root and pid
// belong to root, the rest to the postfix user, maildrop and public to
// its postdrop group.
func (p *PostfixPeer) writeFiles(conf postfixConf, ids postfixOwners) error {
	dirs := []struct {
		path string
		mode os.FileMode
		own  owner
	}{
		{conf.QueueDir, 0o755, owner{}},
		{filepath.Join(conf.QueueDir, "pid"), 0o755, owner{}},
		{filepath.Join(conf.QueueDir, "maildrop"), 0o730, ids.drop},
		{filepath.Join(conf.QueueDir, "public"), 0o710, ids.drop},
		{conf.DataDir, 0o700, ids.owner},
		{conf.MailBase, 0o700, ids.mail},
	}
	for _, q := range []string{"active", "bounce", "corrupt", "defer", "deferred", "flush", "hold", "incoming", "private", "saved", "trace"} {
		dirs = append(dirs, struct {
			path string
			mode os.FileMode
			own  owner
		}{filepath.Join(conf.QueueDir, q), 0o700, ids.owner})
	}
	for _, d := range dirs {
		if err := mkdirOwned(d.path, d.mode, d.own); err != nil {
			return err
		}
	}
	cert, roots, err := newPeerCert("postern test postfix")
	if err != nil {
		return err
	}
	p.roots = roots
	mainCF, err := conf.render(postfixMain)
	if err != nil {
		return err
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{conf.CertFile, cert.CertPEM, 0o644},
		{conf.KeyFile, cert.KeyPEM, 0o600},
		{conf.SendersMap, []byte(postfixSenders), 0o644},
		{filepath.Join(conf.Dir, "main.cf"), mainCF, 0o644},
	} {
		if err := writeOwned(f.path, f.data, f.mode, owner{}); err != nil {
			return err
		}
	}
	return nil
}

func mkdirOwned(path string, mode os.FileMode, o owner) error {
	if err := os.Mkdir(path, mode); err != nil {
		return fmt.Errorf("mkdir: %w", err)
	}
	// Mkdir's mode passes through the umask; the queue needs it exact.
	if err := os.Chmod(path, mode); err != nil {
		return fmt.Errorf("chmod %s: %w", filepath.Base(path), err)
	}
	return o.apply(path)
}

// runPostfix starts master in the foreground, in a process group of its
// own, and waits until smtpd greets. On failure it returns Postfix's own
// words for the test log.
func runPostfix(t testing.TB, master string, conf postfixConf, p *PostfixPeer) (string, error) {
	text, err := conf.render(postfixMaster)
	if err != nil {
		return "", err
	}
	if err := writeOwned(filepath.Join(conf.Dir, "master.cf"), text, 0o644, owner{}); err != nil {
		return "", err
	}
	var out LockedBuffer
	cmd := exec.Command(master, "-c", conf.Dir, "-d")
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.SysProcAttr = peerGroupProcAttr()
	if err := cmd.Start(); err != nil {
		return "", fmt.Errorf("exec: %w", err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	stop := func() { stopProcess(t, cmd, exited, func(sig syscall.Signal) error { return signalGroup(cmd, sig) }) }
	// master binds the port before it forks the first smtpd.
	ready := func(deadline time.Time) error { return greets(p.Addr, "220 ", deadline) }
	if err := waitGreeting("postfix", exited, ready); err != nil {
		stop()
		return diagnostics(out.String(), p.LogFile), err
	}
	t.Cleanup(stop)
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postfix %s:\n%s", p.Addr, diagnostics(out.String(), p.LogFile))
		}
	})
	return "", nil
}

// Log returns Postfix's log so far.
func (p *PostfixPeer) Log(t testing.TB) string {
	t.Helper()
	data, err := os.ReadFile(p.LogFile)
	if err != nil {
		t.Fatalf("read postfix log: %v", err)
	}
	return string(data)
}

// WaitLog polls until Postfix's log holds want, and returns the log.
// Postfix's daemons log through postlogd, after the fact.
func (p *PostfixPeer) WaitLog(t testing.TB, want string) string {
	t.Helper()
	return p.waitLog(t, func(log string) bool { return strings.Contains(log, want) }, fmt.Sprintf("%q", want))
}

// WaitLogFunc polls until done holds for Postfix's log, and returns the
// log; what says what done looks for, for the failure message.
func (p *PostfixPeer) WaitLogFunc(t testing.TB, what string, done func(log string) bool) string {
	t.Helper()
	return p.waitLog(t, done, what)
}

func (p *PostfixPeer) waitLog(t testing.TB, done func(string) bool, what string) string {
	t.Helper()
	var log string
	poll(t, func() bool {
		log = p.Log(t)
		return done(log)
	}, func() string { return fmt.Sprintf("%s never appeared in postfix's log:\n%s", what, log) })
	return log
}

// Delivered returns the messages delivered so far, oldest first, as
// stored: headers (Postfix's Return-Path, Delivered-To and Received, which
// names the authenticated sender) and body.
func (p *PostfixPeer) Delivered(t testing.TB) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(p.mailDir, "new"))
	if errors.Is(err, os.ErrNotExist) {
		return nil // created with the first delivery
	}
	if err != nil {
		t.Fatalf("read maildir: %v", err)
	}
	// Maildir names start with the delivery time in seconds only; the
	// files' modification times order deliveries within a second.
	type file struct {
		name string
		mod  time.Time
	}
	files := make([]file, 0, len(entries))
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatalf("stat message: %v", err)
		}
		files = append(files, file{e.Name(), info.ModTime()})
	}
	slices.SortFunc(files, func(a, b file) int {
		return cmp.Or(a.mod.Compare(b.mod), cmp.Compare(a.name, b.name))
	})
	names := make([]string, len(files))
	for i, f := range files {
		names[i] = f.name
	}
	msgs := make([]string, 0, len(names))
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(p.mailDir, "new", n))
		if err != nil {
			t.Fatalf("read message: %v", err)
		}
		msgs = append(msgs, string(data))
	}
	return msgs
}

// WaitDelivered polls until at least n messages were delivered and returns
// them all. Delivery runs after the SMTP answer, in the queue manager.
func (p *PostfixPeer) WaitDelivered(t testing.TB, n int) []string {
	t.Helper()
	var msgs []string
	poll(t, func() bool {
		msgs = p.Delivered(t)
		return len(msgs) >= n
	}, func() string {
		return fmt.Sprintf("%d messages delivered, want %d; postfix's log:\n%s", len(msgs), n, p.Log(t))
	})
	return msgs
}

// WaitMessage polls until a message with subject was delivered and
// returns it as stored.
func (p *PostfixPeer) WaitMessage(t testing.TB, subject string) string {
	t.Helper()
	var got string
	poll(t, func() bool {
		for _, m := range p.Delivered(t) {
			if strings.Contains(m, "\nSubject: "+subject+"\r\n") || strings.Contains(m, "\nSubject: "+subject+"\n") {
				got = m
				return true
			}
		}
		return false
	}, func() string {
		return fmt.Sprintf("no message with subject %q was delivered; postfix's log:\n%s", subject, p.Log(t))
	})
	return got
}

// poll checks done until it holds, failing t with why() after IOGuard.
func poll(t testing.TB, done func() bool, why func() string) {
	t.Helper()
	deadline := time.Now().Add(linetest.IOGuard)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for !done() {
		if time.Now().After(deadline) {
			t.Fatal(why())
		}
		<-tick.C
	}
}
