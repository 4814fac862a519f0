package bench

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/internal/testpeer"
)

// benchEnv turns the benchmark on: "1" for the full run that writes
// RESULTS.md, "quick" for a smoke run that only prints.
const benchEnv = "POSTERN_BENCH"

// oneSourceConcurrency is the concurrency of the one-source login figure.
const oneSourceConcurrency = 64

// wantSessions is the idle-session count; the run holds fewer when
// the descriptor limit cannot fit them (see sessionsThatFit).
const wantSessions = 10000

// plan is how much of each figure a run measures.
type plan struct {
	name          string
	concurrency   []int
	loginWarmup   time.Duration
	loginDuration time.Duration
	fetchDuration time.Duration
	loginGrace    time.Duration
	rounds        int // login runs per target and figure, taking turns
	fetchMin      int
	idle          []int // session counts, ascending
	settleMax     time.Duration
	gcWait        time.Duration // longest run of logins to make postern collect twice
	write         bool          // write RESULTS.md
}

func fullPlan(top int) plan {
	return plan{
		name: "full", concurrency: []int{1, 16, 64},
		loginWarmup: 500 * time.Millisecond, loginDuration: 2 * time.Second, loginGrace: 5 * time.Second, rounds: 3,
		fetchDuration: time.Second, fetchMin: 3,
		idle: []int{1000, top}, settleMax: 10 * time.Second, gcWait: time.Minute, write: true,
	}
}

// top is the largest idle-session count.
func (p plan) top() int { return p.idle[len(p.idle)-1] }

func quickPlan() plan {
	return plan{
		name: "quick", concurrency: []int{1, 16},
		loginWarmup: 300 * time.Millisecond, loginDuration: time.Second, loginGrace: 2 * time.Second, rounds: 1,
		fetchDuration: 500 * time.Millisecond, fetchMin: 1,
		idle: []int{100, 500}, settleMax: 3 * time.Second, gcWait: 20 * time.Second,
	}
}

// TestReport measures every figure for every target in one run and
// prints the table; the full run also writes RESULTS.md.
func TestReport(t *testing.T) {
	var p plan
	switch os.Getenv(benchEnv) {
	case "":
		t.Skipf("benchmarks are off; run with %s=1 (full, writes RESULTS.md) or %s=quick", benchEnv, benchEnv)
	case "quick":
		p = quickPlan()
		sessionsThatFit(t)
	default:
		p = fullPlan(sessionsThatFit(t))
	}
	env := setup(t)
	start := time.Now()
	rows, cpu, notes := env.measure(t, p)
	verdicts := Judge(rows, goals(p))
	report := render(env.machine(), env.postern, p, rows, cpu, verdicts, notes, time.Since(start))
	fmt.Println(report)
	if p.write {
		// The revocation, DAV and SMTP sections come from their own runs; keep them.
		if old, err := os.ReadFile("RESULTS.md"); err == nil {
			for _, sec := range []section{revocationSection, davSection, smtpSection} {
				if kept := sec.of(string(old)); kept != "" {
					report = sec.put(report, kept)
				}
			}
		}
		if err := os.WriteFile("RESULTS.md", []byte(report), 0o644); err != nil {
			t.Fatalf("write RESULTS.md: %v", err)
		}
	}
}

// sessionsThatFit is the most idle sessions a single-process proxy can
// hold under this process's descriptor limit (which the servers inherit):
// two descriptors a session, client and upstream, and some to spare. The
// hard limit is raised first when privilege allows.
func sessionsThatFit(t *testing.T) int {
	want := uint64(2*wantSessions + 1000)
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	if lim.Max < want {
		raised := syscall.Rlimit{Cur: want, Max: want}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &raised); err == nil {
			lim = raised
		} else {
			t.Logf("cannot raise RLIMIT_NOFILE to %d (%v); hard limit stays %d", want, err, lim.Max)
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("setrlimit: %v", err)
	}
	fit := (int(lim.Max) - 400) / 2 / 250 * 250
	return min(wantSessions, fit)
}

// certFiles is a PEM certificate and key on disk.
type certFiles struct{ cert, key string }

// target is one column of the table: where clients connect and with what.
type target struct {
	name      string
	tlsAddr   string
	plainAddr string // "" when the target refuses a cleartext login
	plainNote string // why plainAddr is empty
	accounts  []load.Account
	clientTLS *tls.Config
	// fresh starts a new server process for the memory figures (nil: the
	// running one is measured) and returns its pid and a stop function.
	fresh func(t *testing.T) (pid int, stop func())
	pid   int // the process tree measured when fresh is nil
	// proxy is the pid of the proxy process serving TLS or plaintext
	// clients; nil for direct.
	proxy func(secure bool) int
	// memory reads the memory of a process tree: VmRSS, or Pss for
	// Dovecot, whose thousands of processes share most of their pages.
	memory func(pid int) (int64, error)
	// metricsAddr serves the Go runtime's figures (postern's /metrics).
	metricsAddr string
}

// loginTarget is where and how the cell's clients connect; false when the
// target does not serve the cell (postern and plaintext logins).
func (tg *target) loginTarget(lc loginCell) (load.Target, bool) {
	lt := tg.loginTargetTLS()
	if !lc.secure {
		if tg.plainAddr == "" {
			return load.Target{}, false
		}
		lt = load.Target{Addr: tg.plainAddr, Sources: lt.Sources}
	}
	if lc.oneSource {
		lt.Sources = nil
	}
	return lt, true
}

// loginTargetTLS is the TLS listener, with connections spread over many
// client addresses as real clients are.
func (tg *target) loginTargetTLS() load.Target {
	return load.Target{Addr: tg.tlsAddr, TLS: tg.clientTLS, Sources: clientSources()}
}

// env is everything a run measures.
type env struct {
	postern    string // the code postern was built from
	dovecot    *testpeer.DovecotPeer
	dovecotPID int // master; 0 when not found
	targets    []*target
}

// setup starts Dovecot and the three proxies in front of it.
func setup(t *testing.T) *env {
	t.Helper()
	bin := t.TempDir()
	d := startDovecot(t)
	cert, clientTLS := benchCert(t)
	e := &env{dovecot: d, dovecotPID: dovecotPID(t, d)}

	direct := &target{name: Direct, tlsAddr: d.IMAPSAddr, plainAddr: d.IMAPAddr, clientTLS: pinX25519(d.ClientTLSConfig()),
		memory: load.TreePss}
	for i := range mailUsers {
		direct.accounts = append(direct.accounts, load.Account{User: userName(i), Password: d.Users[userName(i)]})
	}
	direct.pid = e.dovecotPID

	ps := setupPostern(t, bin, d, cert)
	e.postern = ps.source
	var running *process
	running = ps.start(t)
	post := &target{name: Postern, tlsAddr: ps.tlsAddr, clientTLS: clientTLS, accounts: ps.accounts,
		plainNote: "refused (P1)", memory: load.TreeRSS, metricsAddr: ps.adminAddr}
	post.proxy = func(bool) int { return running.pid() }
	post.fresh = func(t *testing.T) (int, func()) {
		running.stop(t)
		running = ps.start(t)
		return running.pid(), func() { running.stop(t) }
	}

	ng := setupNginx(t, d, cert, int(noFileLimit(t)))
	ngProc := ng.start(t)
	nginx := &target{name: Nginx, tlsAddr: ng.tlsAddr, plainAddr: ng.plainAddr, clientTLS: clientTLS, accounts: ng.accounts,
		memory: load.TreeRSS}
	nginx.proxy = func(bool) int { return ngProc.pid() }
	nginx.fresh = func(t *testing.T) (int, func()) {
		ngProc.stop(t)
		ngProc = ng.start(t)
		return ngProc.pid(), func() { ngProc.stop(t) }
	}

	relayBin := buildBinary(t, "", bin, "github.com/postern-dev/postern/bench/cmd/relay")
	rl := &target{name: Relay, clientTLS: clientTLS, accounts: direct.accounts, memory: load.TreeRSS}
	relayTLS, relayPlain := startRelays(t, relayBin, d.IMAPAddr, cert)
	rl.tlsAddr, rl.plainAddr = relayTLS.addr, relayPlain.addr
	rl.proxy = func(secure bool) int {
		if secure {
			return relayTLS.proc.pid()
		}
		return relayPlain.proc.pid()
	}
	rl.fresh = func(t *testing.T) (int, func()) {
		relayTLS.proc.stop(t)
		relayTLS = startRelay(t, relayBin, d.IMAPAddr, cert)
		rl.tlsAddr = relayTLS.addr
		return relayTLS.proc.pid(), func() { relayTLS.proc.stop(t) }
	}
	e.targets = []*target{direct, post, nginx, rl}
	return e
}

func noFileLimit(t *testing.T) uint64 {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatalf("getrlimit: %v", err)
	}
	return lim.Cur
}

// benchCert is the certificate every proxy serves, and a client
// configuration that trusts exactly it.
func benchCert(t *testing.T) (certFiles, *tls.Config) {
	t.Helper()
	pair, err := certs.SelfSigned(filepath.Join(t.TempDir(), "tls"))
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return certFiles{pair.CertFile, pair.KeyFile}, pinX25519(cfg)
}

// pinX25519 makes every target do the same key exchange: Go would offer a
// post-quantum hybrid that the Go servers pick and OpenSSL 3.0 (Dovecot,
// nginx) does not know, which would compare different handshakes.
func pinX25519(c *tls.Config) *tls.Config {
	c = c.Clone()
	c.CurvePreferences = []tls.CurveID{tls.X25519}
	return c
}

// relayProc is one running bare relay.
type relayProc struct {
	proc *process
	addr string
}

func startRelays(t *testing.T, bin, upstream string, cert certFiles) (tlsRelay, plainRelay relayProc) {
	t.Helper()
	tlsRelay = startRelay(t, bin, upstream, cert)
	plainRelay = startRelay(t, bin, upstream, certFiles{})
	return tlsRelay, plainRelay
}

// startRelay runs the relay (terminating TLS when cert is set) on a port
// chosen ahead, and waits until it accepts.
func startRelay(t *testing.T, bin, upstream string, cert certFiles) relayProc {
	t.Helper()
	addr := freeAddr(t)
	args := []string{"-listen", addr, "-upstream", upstream}
	name := "relay-plain"
	if cert.cert != "" {
		args = append(args, "-cert", cert.cert, "-key", cert.key)
		name = "relay-tls"
	}
	proc := startProcess(t, t.TempDir(), name, bin, args...)
	proc.waitGreeting(t, addr)
	return relayProc{proc: proc, addr: addr}
}

// dovecotPID finds the Dovecot master process of d: the one started with
// the configuration next to d's log.
func dovecotPID(t *testing.T, d *testpeer.DovecotPeer) int {
	t.Helper()
	conf := filepath.Join(filepath.Dir(d.LogFile), "dovecot.conf")
	return processByArgs(t, "dovecot master for "+conf, func(args []string) bool {
		return len(args) > 2 && filepath.Base(args[0]) == "dovecot" && args[len(args)-1] == conf
	})
}

// processByArgs finds the process whose command line match accepts; 0,
// logged as what, when none does.
func processByArgs(t *testing.T, what string, match func(args []string) bool) int {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil {
			continue
		}
		if match(strings.Split(strings.TrimRight(string(data), "\x00"), "\x00")) {
			var pid int
			fmt.Sscan(e.Name(), &pid)
			return pid
		}
	}
	t.Logf("%s not found; its processor time and memory are not measured", what)
	return 0
}

// clientSources are the client addresses connections rotate over:
// 127.0.1.1 to 127.0.1.64, all on loopback. Real logins come from many
// addresses, and proxies keep per-address limits and state; 127.0.0.1
// stays free for the one-source figure.
func clientSources() []net.IP {
	ips := make([]net.IP, 64)
	for i := range ips {
		ips[i] = net.IPv4(127, 0, 1, byte(i+1))
	}
	return ips
}
