package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// s6FullEnv asks TestS6_Exhaustion for docs/security.md's full figures (10,000
// idle handshakes, 2,000 concurrent password checks); CI runs a fifth:
//
//	POSTERN_S6_FULL=1 go test -count=1 -timeout 20m -run TestS6_Exhaustion -v ./cmd/postern
const s6FullEnv = "POSTERN_S6_FULL"

// s6Scale is how hard TestS6_Exhaustion pushes.
type s6Scale struct{ handshakes, logins int }

func s6Figures() s6Scale {
	if os.Getenv(s6FullEnv) == "1" {
		return s6Scale{handshakes: 10000, logins: 2000}
	}
	return s6Scale{handshakes: 2000, logins: 400}
}

// TestS6_Exhaustion: a real `postern serve` in front of Dovecot, with an
// established IMAP session that keeps sending NOOPs through the relay,
// first takes thousands of TLS handshakes that never finish, then as many
// concurrent LOGINs with account passwords, then, restarted with a low
// descriptor limit, more connections than it has descriptors. It never
// dies; the relayed session keeps moving bytes through each; memory stays
// within a bound set by the connections it holds and the cap on concurrent
// password hashes (A11); at the descriptor limit the accept loop backs off,
// says so once, and accepts again when descriptors are free
// (S6). Peak resident memory of each phase is logged.
func TestS6_Exhaustion(t *testing.T) {
	t.Parallel()
	scale := s6Figures()
	peer := startPeer(t, "s6relay", "s6pw")
	limits := []string{"max_connections = 30000", "max_connections_per_ip = 30000",
		"user_failure_budget = 1000000", "user_source_failure_budget = 1000000", "source_free_failures = 1000"}
	s := newServed(t, peer, e2eOptions{limits: limits})
	s.cli(t, "", "init")
	var relayApp string
	s.withStore(t, func(st *authstore.Store) {
		ctx := e2eCtx()
		for _, name := range []string{"s6relay", "s6pw"} {
			if _, err := st.CreateUser(ctx, authstore.NewUser{Name: name, Password: "s6-" + name + "-password"}); err != nil {
				t.Fatal(err)
			}
		}
		_, grouped, err := st.CreateAppPassword(ctx, "s6relay", authstore.NewAppPassword{Name: "relay"})
		if err != nil {
			t.Fatal(err)
		}
		relayApp = strings.ReplaceAll(grouped, " ", "")
	})
	s.secrets = append(s.secrets, w6Secret{"app password of s6relay", "s6relay", relayApp, ""})
	s.start(t)

	mem := watchRSS(t, s)
	relay := startRelayPings(t, s, "s6relay", relayApp)
	relay.moving(t, "before any flood")
	t.Logf("resident memory at rest: %s", mib(mem.now(t)))

	mem.reset()
	idle := openIdle(t, s, scale.handshakes)
	waitDescriptors(t, s, scale.handshakes)
	relay.moving(t, fmt.Sprintf("with %d idle handshakes", scale.handshakes))
	if got := s.imapTry(t, "s6relay", relayApp); !strings.HasPrefix(got, "a OK") {
		t.Errorf("a login among %d idle handshakes: %q", scale.handshakes, got)
	}
	peakIdle := mem.peak()
	closeAll(idle)
	t.Logf("%d idle TLS handshakes: peak resident memory %s (%s a connection over rest)", scale.handshakes,
		mib(peakIdle), kib((peakIdle-mem.base)/int64(scale.handshakes)))
	// A pre-login connection holds a goroutine, a TLS server state and
	// socket buffers: 64 KiB each is several times what it takes.
	if over := peakIdle - mem.base; over > int64(scale.handshakes)*64<<10 {
		t.Errorf("%d idle handshakes took %s more memory", scale.handshakes, mib(over))
	}

	mem.reset()
	answers := concurrentLogins(t, s, relay, scale.logins)
	peakLogins := mem.peak()
	t.Logf("%d concurrent password checks: peak resident memory %s (%s over the phase's start), at most %d descriptors open",
		scale.logins, mib(peakLogins), mib(peakLogins-mem.base), mem.peakFDs())
	if answers[imapFailure] != scale.logins {
		t.Errorf("%d of %d wrong passwords refused as such; the others: %v", answers[imapFailure], scale.logins, others(answers, imapFailure))
	}
	// Hashes run at most GOMAXPROCS at once, 19 MiB each; the garbage
	// collector lets the heap grow to twice what is live, and the runtime
	// keeps freed memory a while: 4 × 19 MiB per CPU. A login waiting for
	// its turn holds its TLS connection and the upstream connection dialled
	// in the meantime: 128 KiB each is more than both take.
	if over := peakLogins - mem.base; over > int64(maxProcsOf(t, s))*4*19<<20+int64(scale.logins)*128<<10 {
		t.Errorf("%d concurrent password checks took %s more memory", scale.logins, mib(over))
	}
	relay.stop(t)

	descriptorLimit(t, s, relayApp)
}

// descriptorLimit restarts serve with 128 descriptors and opens more
// connections than that: the accept loop pauses, logs it once, and
// accepts again once they are closed, while the relay keeps moving.
func descriptorLimit(t *testing.T, s *served, relayApp string) {
	t.Helper()
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Fatalf("prlimit (util-linux): %v", err)
	}
	s.wrap = []string{prlimit, "--nofile=128:128", "--"}
	s.restart(t)
	relay := startRelayPings(t, s, "s6relay", relayApp)
	relay.moving(t, "under a limit of 128 descriptors")
	idle := openIdle(t, s, 300)
	s.waitLog(t, regexp.MustCompile(`accept failed; retrying with backoff.* listener=`+regexp.QuoteMeta(s.addr("imaps"))))
	relay.moving(t, "with the accept loop out of descriptors")
	closeAll(idle)
	s.waitLog(t, regexp.MustCompile(`accepting again.* listener=`+regexp.QuoteMeta(s.addr("imaps"))))
	if got := s.imapTry(t, "s6relay", relayApp); !strings.HasPrefix(got, "a OK") {
		t.Errorf("a login once descriptors were free again: %q", got)
	}
	relay.moving(t, "after the descriptor limit")
	relay.stop(t)
	if n := strings.Count(s.log.String(), "accept failed"); n < 1 || n > 4 {
		// One line per listener that ran out: the IMAP one, and any other
		// that happened to accept meanwhile.
		t.Errorf("%d lines about failed accepts, want one per listener that ran out", n)
	}
	if !s.running() {
		t.Fatalf("postern serve died at its descriptor limit: %v", s.waitErr)
	}
}

// openIdle opens n TCP connections to the implicit-TLS IMAP listener,
// each from its own loopback address, that never send a byte: TLS
// handshakes that never finish.
func openIdle(t *testing.T, s *served, n int) []net.Conn {
	t.Helper()
	conns := make([]net.Conn, 0, n)
	for i := range n {
		src := fmt.Sprintf("127.%d.%d.%d", 64+i/65536, i/256%256, 1+i%250)
		c, err := dialer(src).Dial("tcp", s.addr("imaps"))
		if err != nil {
			closeAll(conns)
			t.Fatalf("idle connection %d: %v", i, err)
		}
		conns = append(conns, c)
	}
	t.Cleanup(func() { closeAll(conns) })
	return conns
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// waitDescriptors waits until serve holds n descriptors more than the
// few of its own (listeners, the store, standard streams): every idle
// connection accepted.
func waitDescriptors(t *testing.T, s *served, n int) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		fds, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", s.cmd.Process.Pid))
		if err == nil && len(fds) >= n+8 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve holds %d descriptors (%v), want at least %d", len(fds), err, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// concurrentLogins sends n wrong account passwords at once, each from its
// own address and connection, while the relay keeps moving, and counts
// the answers.
func concurrentLogins(t *testing.T, s *served, relay *relayPings, n int) map[string]int {
	t.Helper()
	var mu sync.Mutex
	answers := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	// The last in the queue waits for every hash before it: give each a
	// tenth of a second, several times what one takes.
	patience := time.Duration(n) * 100 * time.Millisecond
	for i := range n {
		wg.Go(func() {
			src := fmt.Sprintf("127.%d.%d.%d", 96+i/65536, i/256%256, 1+i%250)
			<-start
			got, err := imapLoginWithin(s, src, "s6pw", fmt.Sprint("wrong-", i), patience)
			if err != nil {
				got = "error: " + err.Error()
			}
			mu.Lock()
			answers[got]++
			mu.Unlock()
		})
	}
	close(start)
	relay.moving(t, fmt.Sprintf("with %d password checks queued", n))
	wg.Wait()
	return answers
}

// others is answers without want, and with at most five kinds of answer.
func others(answers map[string]int, want string) map[string]int {
	out := map[string]int{}
	for a, n := range answers {
		if a != want && len(out) < 5 {
			out[a] = n
		}
	}
	return out
}

// relayPings is an established IMAP session that sends NOOP after NOOP
// through the relay and counts the answers.
type relayPings struct {
	done    chan struct{}
	stopped chan struct{}
	count   atomic.Int64
	errMu   sync.Mutex
	err     error
}

func startRelayPings(t *testing.T, s *served, user, secret string) *relayPings {
	t.Helper()
	conn, err := tls.DialWithDialer(dialer(""), "tcp", s.addr("imaps"), s.clientTLS())
	if err != nil {
		t.Fatal(err)
	}
	w := &wire{t: t, conn: conn, r: bufio.NewReader(conn)}
	w.expect("* OK")
	if got := w.imapLogin("a", user, secret); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("relay login: %q", got)
	}
	p := &relayPings{done: make(chan struct{}), stopped: make(chan struct{})}
	go p.run(conn, bufio.NewReader(conn))
	t.Cleanup(func() { p.stop(t) })
	return p
}

func (p *relayPings) run(conn net.Conn, r *bufio.Reader) {
	defer close(p.stopped)
	defer conn.Close()
	for i := 0; ; i++ {
		select {
		case <-p.done:
			return
		default:
		}
		conn.SetDeadline(time.Now().Add(e2eIO))
		tag := fmt.Sprint("n", i)
		if _, err := fmt.Fprintf(conn, "%s NOOP\r\n", tag); err != nil {
			p.fail(err)
			return
		}
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				p.fail(err)
				return
			}
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" OK") {
					p.fail(fmt.Errorf("NOOP answered %q", line))
					return
				}
				break
			}
		}
		p.count.Add(1)
	}
}

func (p *relayPings) fail(err error) {
	p.errMu.Lock()
	p.err = err
	p.errMu.Unlock()
}

func (p *relayPings) failed() error {
	p.errMu.Lock()
	defer p.errMu.Unlock()
	return p.err
}

// moving waits for 20 more NOOPs to come back through the relay.
func (p *relayPings) moving(t *testing.T, when string) {
	t.Helper()
	want := p.count.Load() + 20
	deadline := time.Now().Add(e2eIO)
	for p.count.Load() < want {
		if err := p.failed(); err != nil {
			t.Fatalf("the relayed session %s: %v", when, err)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the relayed session stalled %s", when)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (p *relayPings) stop(t *testing.T) {
	t.Helper()
	select {
	case <-p.done:
		return
	default:
		close(p.done)
	}
	<-p.stopped
}

// rssWatch samples serve's resident memory while a phase runs.
type rssWatch struct {
	pid  int // of the serve started first; a restart is not followed
	base int64
	mu   sync.Mutex
	max  int64
	fds  int
}

func watchRSS(t *testing.T, s *served) *rssWatch {
	t.Helper()
	w := &rssWatch{pid: s.cmd.Process.Pid}
	w.base = w.now(t)
	stop := make(chan struct{})
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				v, err := rss(w.pid)
				fds, ferr := os.ReadDir(fmt.Sprintf("/proc/%d/fd", w.pid))
				if err == nil && ferr == nil {
					w.mu.Lock()
					w.max, w.fds = max(w.max, v), max(w.fds, len(fds))
					w.mu.Unlock()
				}
			}
		}
	}()
	t.Cleanup(func() { close(stop) })
	return w
}

func (w *rssWatch) now(t *testing.T) int64 {
	t.Helper()
	v, err := rss(w.pid)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

// reset starts a phase: its base is the memory now.
func (w *rssWatch) reset() {
	v, _ := rss(w.pid)
	w.mu.Lock()
	w.base, w.max, w.fds = v, v, 0
	w.mu.Unlock()
}

func (w *rssWatch) peakFDs() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.fds
}

func (w *rssWatch) peak() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.max
}

// rss reads VmRSS of a process, in bytes.
func rss(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS for %d", pid)
}

// maxProcsOf is how many hashes serve runs at once: its GOMAXPROCS, the
// number of CPUs it may use.
func maxProcsOf(t *testing.T, s *served) int {
	t.Helper()
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", s.cmd.Process.Pid))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`Cpus_allowed_list:\s*(\S+)`).FindSubmatch(data)
	if m == nil {
		t.Fatal("no Cpus_allowed_list")
	}
	n := 0
	for _, part := range strings.Split(string(m[1]), ",") {
		lo, hi, found := strings.Cut(part, "-")
		a, _ := strconv.Atoi(lo)
		b := a
		if found {
			b, _ = strconv.Atoi(hi)
		}
		n += b - a + 1
	}
	return n
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }
func kib(b int64) string { return fmt.Sprintf("%.1f KiB", float64(b)/(1<<10)) }
