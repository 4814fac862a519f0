package admin_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
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

	"github.com/postern-dev/postern/internal/testpeer"
)

// The browser suite drives Chromium against a real `postern serve`
// process, built from this module, in front of a private Dovecot. Each test
// gets its own process, store and Dovecot, so policy and sessions of one
// test never leak into another.

// Bounds on waiting: generous, because two shared cores may be building and
// testing other packages at the same time; only to fail instead of hanging.
const (
	siteStart = 60 * time.Second
	siteStop  = 15 * time.Second
)

// siteUser is an account that exists in Dovecot and in postern's store.
type siteUser struct {
	name, password string
	admin          bool
}

// siteOptions shape one server. Zero values take the defaults.
type siteOptions struct {
	users []siteUser
	// reauthWindow is policy.reauth_window; "" keeps the default.
	reauthWindow string
}

// site is one running `postern serve`.
type site struct {
	peer    *testpeer.DovecotPeer
	dir     string
	cfgFile string
	bin     string
	base    string            // https://127.0.0.1:port of the admin listener
	addrs   map[string]string // listener name → address, from the log
	users   map[string]siteUser
	log     *testpeer.LockedBuffer
	cmd     *exec.Cmd
	exited  chan struct{}

	mu      sync.Mutex
	secrets []string // shown by the pages; never to appear in the log (W6)
}

// remember notes secrets a page showed, for the log check at the end.
func (s *site) remember(secrets ...string) {
	s.mu.Lock()
	s.secrets = append(s.secrets, secrets...)
	s.mu.Unlock()
}

// posternBinary builds cmd/postern once per test binary.
var posternBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "postern-browser-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "postern")
	out, err := exec.Command("go", "build", "-o", bin, "../cmd/postern").CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build ../cmd/postern: %v\n%s", err, out)
	}
	return bin, nil
})

// startSite starts Dovecot with the users, creates them in a fresh store
// with the command line, and runs `postern serve` on it.
func startSite(t *testing.T, opts siteOptions) *site {
	t.Helper()
	bin, err := posternBinary()
	if err != nil {
		t.Fatal(err)
	}
	dovecotUsers := map[string]string{}
	for _, u := range opts.users {
		dovecotUsers[u.name] = rand.Text()
	}
	s := &site{
		peer: testpeer.Dovecot(t, testpeer.DovecotOptions{Users: dovecotUsers}),
		dir:  t.TempDir(), bin: bin, addrs: map[string]string{}, users: map[string]siteUser{},
		log: &testpeer.LockedBuffer{},
	}
	s.cfgFile = filepath.Join(s.dir, "postern.toml")
	if err := os.WriteFile(s.cfgFile, []byte(s.configText(t, opts)), 0o600); err != nil {
		t.Fatal(err)
	}
	s.postern(t, "", "init")
	for _, u := range opts.users {
		args := []string{"user", "add", u.name, "--password-stdin"}
		if u.admin {
			args = append(args, "--role", "admin")
		}
		s.postern(t, u.password, args...)
		s.users[u.name] = u
	}
	s.serve(t)
	return s
}

// postern runs one command-line command against the site's configuration
// (through the control socket while serve runs) and returns its stdout.
func (s *site) postern(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(s.bin, append(args, "-c", s.cfgFile)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("postern %s: %v\n%s%s", strings.Join(args, " "), err, out, stderr.String())
	}
	return string(out)
}

func (s *site) configText(t *testing.T, opts siteOptions) string {
	t.Helper()
	masterFile := filepath.Join(s.dir, "master-password")
	if err := os.WriteFile(masterFile, []byte(s.peer.MasterPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := strconv.Quote
	policy := ""
	if opts.reauthWindow != "" {
		policy = "reauth_window = " + q(opts.reauthWindow)
	}
	return fmt.Sprintf(`data_dir = %s
key_file = %s

[log]
level = "debug" # the secret check below reads every line

[tls]
self_signed = true

[imap]
listen_tls = "127.0.0.1:0"
listen_starttls = ""

[pop3]
listen_tls = ""
listen_stls = ""

[admin]
listen = "127.0.0.1:0"

[upstream.imap]
address = %s
security = "starttls"
ca_file = %s
login = "master"
master_user = %s
master_password_file = %s

[policy]
%s

[limits]
source_free_failures = 1000
source_delay = "10ms"
`, q(filepath.Join(s.dir, "data")), q(filepath.Join(s.dir, "keys", "postern.key")),
		q(s.peer.IMAPAddr), q(s.peer.CAFile), q(s.peer.MasterUser), q(masterFile), policy)
}

// listeningRE matches the line serve logs for each socket it opened.
var listeningRE = regexp.MustCompile(`msg=listening (?:\S+ )*?listener=(\S+) addr=(\S+)`)

// serve starts the process and waits until it logged its admin and IMAP
// listeners.
func (s *site) serve(t *testing.T) {
	t.Helper()
	s.cmd = exec.Command(s.bin, "serve", "-c", s.cfgFile)
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatalf("start postern serve: %v", err)
	}
	s.exited = make(chan struct{})
	go func() { s.cmd.Wait(); close(s.exited) }()
	t.Cleanup(func() { s.stop(t) })
	deadline := time.Now().Add(siteStart)
	for {
		for _, m := range listeningRE.FindAllStringSubmatch(s.log.String(), -1) {
			s.addrs[m[1]] = m[2]
		}
		if s.addrs["admin"] != "" && s.addrs["imaps"] != "" {
			s.base = "https://" + s.addrs["admin"]
			return
		}
		select {
		case <-s.exited:
			t.Fatalf("postern serve exited: %v\n%s", s.cmd.ProcessState, s.log)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("postern serve did not log its listeners within %v:\n%s", siteStart, s.log)
		}
	}
}

// stop ends the process with SIGTERM, as an init system would, and shows
// its log when the test failed.
func (s *site) stop(t *testing.T) {
	s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.exited:
	case <-time.After(siteStop):
		s.cmd.Process.Kill()
		<-s.exited
		t.Errorf("postern serve did not stop within %v of SIGTERM", siteStop)
	}
	if t.Failed() {
		t.Logf("postern serve log:\n%s", s.log)
	}
	log := s.log.String()
	for _, u := range s.users {
		if strings.Contains(log, u.password) {
			t.Errorf("the server log contains %s's account password", u.name)
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, secret := range s.secrets {
		if strings.Contains(log, secret) || strings.Contains(log, strings.ReplaceAll(secret, " ", "")) {
			t.Errorf("the server log contains a secret a page showed")
		}
	}
}

// url is the absolute address of a page.
func (s *site) url(path string) string { return s.base + path }

// errBrowserTimeout is what waitFor reports when a condition never held.
var errBrowserTimeout = errors.New("timed out")

// waitFor polls cond every 20 ms until it holds or within passes.
func waitFor(ctx context.Context, within time.Duration, cond func() (bool, error)) error {
	ctx, cancel := context.WithTimeout(ctx, within)
	defer cancel()
	for {
		ok, err := cond()
		if err != nil || ok {
			return err
		}
		select {
		case <-ctx.Done():
			return errBrowserTimeout
		case <-time.After(20 * time.Millisecond):
		}
	}
}
