package testpeer

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// pgStartTimeout bounds initdb, a base backup and a start; two shared
// cores running other peers can make each take seconds.
const pgStartTimeout = 60 * time.Second

// ErrPeerMissing means a peer's binaries are not installed.
var ErrPeerMissing = errors.New("peer not installed; run scripts/install-peers")

// PostgresOptions choose how a private PostgreSQL runs. Zero values suit a
// test.
type PostgresOptions struct {
	// TLS makes the server accept TLS with a self-signed certificate for
	// 127.0.0.1 and localhost (CAFile); clients may still connect without.
	TLS bool
	// Durable keeps fsync and full-page writes on, as a production server
	// has them (benchmarks). Tests run without: a test server never
	// outlives a crash of its machine, and a killed server process still
	// loses nothing it acknowledged.
	Durable bool
	// Settings are extra postgresql.conf lines ("max_connections = 200").
	Settings []string
}

// PostgresPeer is a running private PostgreSQL (15 or later) on loopback,
// in a temporary directory, run as an unprivileged user. Its superuser
// logs in by password over TCP; there is no Unix socket.
type PostgresPeer struct {
	Host string // 127.0.0.1
	Port int
	Addr string // Host:Port
	// Superuser and SuperPassword log in as the bootstrap superuser.
	Superuser     string
	SuperPassword string
	// CAFile is the server's certificate (PEM) when TLS is on.
	CAFile  string
	Dir     string // the data directory
	LogFile string

	bin  string
	cred *syscall.Credential // nil: run as this process's user
	root string              // the temporary directory holding Dir, removed by Close

	mu   sync.Mutex
	proc *pgProc // nil while stopped
}

type pgProc struct {
	cmd    *exec.Cmd
	exited chan struct{}
}

// Postgres starts a private PostgreSQL for t and removes it when t ends.
// It skips t when the server binaries are missing (see RequirePeer).
func Postgres(t testing.TB, opts PostgresOptions) *PostgresPeer {
	t.Helper()
	p, err := StartPostgres(opts)
	if errors.Is(err, ErrPeerMissing) {
		requireOrSkip(t, err.Error())
	}
	if err != nil {
		t.Fatalf("start postgres: %v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("postgres %s:\n%s", p.Addr, p.logTail())
		}
		p.Close()
	})
	return p
}

// StartPostgres is Postgres for a caller without a test (a TestMain
// sharing one server among its tests); Close removes it. Its error is
// ErrPeerMissing when the binaries are not installed.
func StartPostgres(opts PostgresOptions) (*PostgresPeer, error) {
	p, err := newPostgresPeer()
	if err != nil {
		return nil, err
	}
	if err := p.initdb(opts); err != nil {
		p.Close()
		return nil, err
	}
	if err := p.startOnFreePort(); err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// newPostgresPeer finds the binaries and makes the directory, owned by
// the user the server will run as.
func newPostgresPeer() (*PostgresPeer, error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	p := &PostgresPeer{Host: "127.0.0.1", Superuser: "postgres", SuperPassword: rand.Text(), bin: bin}
	if os.Geteuid() == 0 {
		// initdb refuses to run as root, and the server should not.
		uid, gid, err := lookupIDs("postgres", "postgresql-common")
		if err != nil {
			return nil, err
		}
		p.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	}
	if p.root, err = os.MkdirTemp("", "postern-pg-"); err != nil {
		return nil, fmt.Errorf("postgres dir: %w", err)
	}
	p.Dir, p.LogFile = filepath.Join(p.root, "data"), filepath.Join(p.root, "postgres.log")
	if err := p.chown(p.root); err != nil {
		os.RemoveAll(p.root)
		return nil, err
	}
	return p, nil
}

// postgresBinDir finds Debian's server binaries, version 15 first.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	slices.SortFunc(dirs, func(a, b string) int { return pgVersion(b) - pgVersion(a) })
	for _, pref := range []bool{true, false} {
		for _, d := range dirs {
			v := pgVersion(d)
			if (v == 15) != pref || v < 15 {
				continue
			}
			if _, err := os.Stat(filepath.Join(d, "postgres")); err == nil {
				return d, nil
			}
		}
	}
	return "", fmt.Errorf("postgres: %w (want the postgresql-15 server binaries in /usr/lib/postgresql/15/bin)", ErrPeerMissing)
}

func pgVersion(binDir string) int {
	v, _ := strconv.Atoi(filepath.Base(filepath.Dir(binDir)))
	return v
}

func (p *PostgresPeer) chown(path string) error { return chownTo(path, p.cred) }

// chownTo gives path to the user of cred; nil leaves it as it is (a peer
// that runs as this process's user).
func chownTo(path string, cred *syscall.Credential) error {
	if cred == nil {
		return nil
	}
	if err := os.Chown(path, int(cred.Uid), int(cred.Gid)); err != nil {
		return fmt.Errorf("chown %s: %w", filepath.Base(path), err)
	}
	return nil
}

// command runs one of the server's binaries as the server's user.
func (p *PostgresPeer) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(filepath.Join(p.bin, name), args...)
	cmd.SysProcAttr = peerProcAttr()
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Credential = p.cred
	cmd.Dir = p.root
	cmd.Env = append(os.Environ(), "PGPASSWORD="+p.SuperPassword, "PGCONNECT_TIMEOUT=5", "PGSSLMODE=disable", "LC_ALL=C")
	return cmd
}

// writeOwnedFile writes a file the server's user owns and reads.
func (p *PostgresPeer) writeOwnedFile(path string, data []byte, mode os.FileMode) error {
	if err := os.WriteFile(path, data, mode); err != nil {
		return fmt.Errorf("write %s: %w", filepath.Base(path), err)
	}
	return p.chown(path)
}

func (p *PostgresPeer) initdb(opts PostgresOptions) error {
	pwFile := filepath.Join(p.root, "pwfile")
	if err := p.writeOwnedFile(pwFile, []byte(p.SuperPassword+"\n"), 0o600); err != nil {
		return err
	}
	defer os.Remove(pwFile)
	out, err := p.command("initdb", "-D", p.Dir, "-U", p.Superuser, "--pwfile", pwFile,
		"--auth-host=scram-sha-256", "--auth-local=scram-sha-256", "-E", "UTF8", "--locale=C",
		"--no-sync", "--no-instructions").CombinedOutput()
	if err != nil {
		return fmt.Errorf("initdb: %w\n%s", err, out)
	}
	conf := []string{
		"listen_addresses = '127.0.0.1'",
		"unix_socket_directories = ''",
		"wal_level = replica",
		"max_wal_senders = 10",
		"hot_standby = on",
		"log_min_messages = warning",
		"log_line_prefix = '%m [%p] %u@%d '",
	}
	if !opts.Durable {
		conf = append(conf, "fsync = off", "full_page_writes = off")
	}
	if opts.TLS {
		tlsConf, err := p.writeCert()
		if err != nil {
			return err
		}
		conf = append(conf, tlsConf...)
	}
	conf = append(conf, opts.Settings...)
	f, err := os.OpenFile(filepath.Join(p.Dir, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("postgresql.conf: %w", err)
	}
	_, err = f.WriteString("\n# postern test peer\n" + strings.Join(conf, "\n") + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// writeCert makes the server's certificate and returns the settings that
// serve it.
func (p *PostgresPeer) writeCert() ([]string, error) {
	cert, err := newSelfSigned("postern test postgres")
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(p.root, "server.crt"), filepath.Join(p.root, "server.key")
	if err := p.writeOwnedFile(certFile, cert.CertPEM, 0o644); err != nil {
		return nil, err
	}
	if err := p.writeOwnedFile(keyFile, cert.KeyPEM, 0o600); err != nil {
		return nil, err
	}
	p.CAFile = certFile
	return []string{"ssl = on", "ssl_cert_file = '" + certFile + "'", "ssl_key_file = '" + keyFile + "'"}, nil
}

// startOnFreePort picks a port and starts the server there, again on
// another port when a parallel test took the one chosen.
func (p *PostgresPeer) startOnFreePort() error {
	return onFreePorts(func() (string, error) {
		port, err := freePort()
		if err != nil {
			return "", err
		}
		p.Port, p.Addr = port, net.JoinHostPort(p.Host, strconv.Itoa(port))
		if err := p.Start(); err != nil {
			return p.logTail(), err
		}
		return "", nil
	})
}

// Start starts the server again on its port, after Stop or Kill, and
// waits until it accepts connections.
func (p *PostgresPeer) Start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		return errors.New("postgres is already running")
	}
	deadline := time.Now().Add(pgStartTimeout)
	for {
		err := p.start()
		// After a Kill the old server's children end by themselves once
		// they notice (each leads its own process group, so the signal
		// did not reach them); until then the new server refuses to
		// share their memory.
		if err == nil || time.Now().After(deadline) || !strings.Contains(p.logTail(), "is still in use") {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *PostgresPeer) start() error {
	log, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_APPEND|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	cmd := p.command("postgres", "-D", p.Dir, "-p", strconv.Itoa(p.Port))
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("exec postgres: %w", err)
	}
	proc := &pgProc{cmd: cmd, exited: make(chan struct{})}
	go func() {
		cmd.Wait()
		log.Close()
		close(proc.exited)
	}()
	if err := p.waitReady(proc.exited); err != nil {
		stopPG(proc, syscall.SIGKILL)
		return err
	}
	p.proc = proc
	return nil
}

// waitReady polls pg_isready until the server accepts connections.
func (p *PostgresPeer) waitReady(exited <-chan struct{}) error {
	deadline := time.Now().Add(pgStartTimeout)
	for time.Now().Before(deadline) {
		err := p.command("pg_isready", "-q", "-h", p.Host, "-p", strconv.Itoa(p.Port), "-t", "2").Run()
		if err == nil {
			return nil
		}
		select {
		case <-exited:
			return errors.New("postgres exited during startup")
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("postgres not ready within %v", pgStartTimeout)
}

// Stop shuts the server down (fast shutdown: sessions are ended, nothing
// committed is lost) and keeps its data for Start.
func (p *PostgresPeer) Stop() error { return p.halt(syscall.SIGINT) }

// Kill ends the server at once, as a crash of the machine's server
// process would (SIGKILL); Start recovers it from its log.
func (p *PostgresPeer) Kill() error { return p.halt(syscall.SIGKILL) }

func (p *PostgresPeer) halt(sig syscall.Signal) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc == nil {
		return nil
	}
	err := stopPG(p.proc, sig)
	p.proc = nil
	return err
}

// stopPG signals the postmaster, which ends its children itself.
func stopPG(proc *pgProc, sig syscall.Signal) error {
	_ = proc.cmd.Process.Signal(sig)
	select {
	case <-proc.exited:
		return nil
	case <-time.After(peerStopTimeout):
		_ = proc.cmd.Process.Kill()
		<-proc.exited
		return fmt.Errorf("postgres ignored signal %v for %v; killed", sig, peerStopTimeout)
	}
}

// Close stops the server and removes its directory.
func (p *PostgresPeer) Close() error {
	err := p.Stop()
	if p.root != "" {
		if rerr := os.RemoveAll(p.root); err == nil {
			err = rerr
		}
	}
	return err
}

// logTail is the end of the server's log, for a failed test.
func (p *PostgresPeer) logTail() string { return fileTail(p.LogFile) }

// fileTail is the last logTailLines lines of a peer's log file, "" when
// there is none.
func fileTail(path string) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-logTailLines):], "\n")
}

// URL is a connection URL for user on database db, without TLS.
func (p *PostgresPeer) URL(user, password, db string) string {
	u := url.URL{Scheme: "postgres", User: url.UserPassword(user, password), Host: p.Addr, Path: "/" + db,
		RawQuery: "sslmode=disable"}
	return u.String()
}

// SuperURL is URL for the superuser.
func (p *PostgresPeer) SuperURL(db string) string { return p.URL(p.Superuser, p.SuperPassword, db) }

// Exec runs SQL as the superuser on database db with psql and returns its
// unaligned output.
func (p *PostgresPeer) Exec(db, sql string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), pgStartTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, filepath.Join(p.bin, "psql"), "-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1",
		"-h", p.Host, "-p", strconv.Itoa(p.Port), "-U", p.Superuser, "-d", db, "-c", sql)
	cmd.Env = append(os.Environ(), "PGPASSWORD="+p.SuperPassword, "PGCONNECT_TIMEOUT=5", "PGSSLMODE=disable")
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("psql on %s: %w\n%s", p.Addr, err, out)
	}
	return strings.TrimSpace(string(out)), nil
}

var pgNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,62}$`)

// CreateRole adds a role that logs in with password.
func (p *PostgresPeer) CreateRole(name, password string) error {
	if !pgNameRE.MatchString(name) {
		return fmt.Errorf("role name %q: use lowercase letters, digits and _", name)
	}
	_, err := p.Exec("postgres", fmt.Sprintf("CREATE ROLE %s LOGIN PASSWORD %s", name, pgLiteral(password)))
	return err
}

// CreateDatabase adds a database owned by owner and returns owner's URL
// for it, given owner's password.
func (p *PostgresPeer) CreateDatabase(name, owner, password string) (string, error) {
	if !pgNameRE.MatchString(name) || !pgNameRE.MatchString(owner) {
		return "", fmt.Errorf("database %q or owner %q: use lowercase letters, digits and _", name, owner)
	}
	if _, err := p.Exec("postgres", fmt.Sprintf("CREATE DATABASE %s OWNER %s", name, owner)); err != nil {
		return "", err
	}
	return p.URL(owner, password, name), nil
}

// Database makes a role and a database it owns, both named name, and
// returns the role's URL for it.
func (p *PostgresPeer) Database(t testing.TB, name string) string {
	t.Helper()
	password := rand.Text()
	if err := p.CreateRole(name, password); err != nil {
		t.Fatal(err)
	}
	u, err := p.CreateDatabase(name, name, password)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func pgLiteral(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }
