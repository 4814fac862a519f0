package testpeer

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"testing"
)

// FaultKind is a way an upstream can fail or misbehave (S5).
type FaultKind int

const (
	// FaultDown is a loopback port nothing listens on: connections are
	// refused.
	FaultDown FaultKind = iota
	// FaultBlackhole accepts connections and then neither writes nor reads.
	FaultBlackhole
	// FaultSlow sends an IMAP greeting one byte per second.
	FaultSlow
	// FaultCloseMidLogin greets, answers CAPABILITY, and closes the
	// connection on the first LOGIN or AUTHENTICATE.
	FaultCloseMidLogin
	// FaultHugeLine greets with a 10 MiB line that never ends.
	FaultHugeLine
	// FaultPreauth greets with "* PREAUTH": no login, no chance to check
	// who is logged in.
	FaultPreauth
	// FaultRefuseLogin greets, advertises AUTH=PLAIN and SASL-IR, and
	// answers every login with NO [AUTHENTICATIONFAILED].
	FaultRefuseLogin
	// FaultBadCert speaks implicit TLS with a fresh self-signed certificate
	// nobody trusts, then greets normally and refuses logins.
	FaultBadCert
	// FaultBadCertStartTLS greets in plaintext offering STARTTLS (and
	// LOGINDISABLED), then upgrades with a certificate nobody trusts and
	// refuses logins.
	FaultBadCertStartTLS
)

// Sizes and pacing of the hostile behaviours.
const (
	hugeLineSize = 10 << 20
	slowGreeting = "* OK IMAP4rev1 slow server ready\r\n"
)

func (k FaultKind) String() string {
	names := [...]string{"down", "blackhole", "slow", "close-mid-login", "huge-line", "preauth", "refuse-login", "bad-cert",
		"bad-cert-starttls"}
	if k < 0 || int(k) >= len(names) {
		return fmt.Sprintf("FaultKind(%d)", int(k))
	}
	return names[k]
}

// FaultPeer is a running fault upstream. It serves every connection it gets
// until the test ends, and records what each one sent.
type FaultPeer struct {
	Addr string
	Kind FaultKind

	ln      net.Listener
	tlsConf *tls.Config
	wg      sync.WaitGroup // accept loop, connection handlers and writers
	stop    chan struct{}  // closed at cleanup

	mu       sync.Mutex
	closed   bool
	open     map[net.Conn]struct{}
	received [][]byte      // per accepted connection, in accept order
	pending  int           // accepted connections whose input may still grow
	changed  chan struct{} // closed and replaced whenever the above change
}

// Fault starts a fault upstream of the given kind for t and returns its
// address. Use StartFault to inspect what it received.
func Fault(t testing.TB, kind FaultKind) (addr string) {
	t.Helper()
	return StartFault(t, kind).Addr
}

// StartFault starts a fault upstream that lives until t ends.
func StartFault(t testing.TB, kind FaultKind) *FaultPeer {
	t.Helper()
	f := &FaultPeer{Kind: kind, open: map[net.Conn]struct{}{}, changed: make(chan struct{}), stop: make(chan struct{})}
	if kind == FaultDown {
		addr, release, err := reserveRefusingAddr()
		if err != nil {
			t.Fatalf("fault %v: %v", kind, err)
		}
		t.Cleanup(release)
		f.Addr = addr
		return f
	}
	if kind == FaultBadCert || kind == FaultBadCertStartTLS {
		conf, err := untrustedTLS()
		if err != nil {
			t.Fatalf("fault %v: %v", kind, err)
		}
		f.tlsConf = conf
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("fault %v: listen: %v", kind, err)
	}
	f.ln, f.Addr = ln, ln.Addr().String()
	f.wg.Add(1)
	go f.acceptLoop()
	t.Cleanup(f.close)
	return f
}

func untrustedTLS() (*tls.Config, error) {
	cert, err := newSelfSigned("untrusted test peer")
	if err != nil {
		return nil, err
	}
	return cert.TLSConfig()
}

// Received returns, per accepted connection in accept order, the bytes it
// has received so far (for FaultBadCert and FaultBadCertStartTLS only what
// arrived inside TLS). Its length is the number of connections accepted.
func (f *FaultPeer) Received() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([][]byte, len(f.received))
	for i, b := range f.received {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// Wait returns once at least conns connections were accepted and each
// accepted connection is settled: its client closed it, the fault closed
// it, or the fault never reads it (FaultBlackhole). Received is then final
// for those connections.
func (f *FaultPeer) Wait(ctx context.Context, conns int) error {
	for {
		f.mu.Lock()
		done := len(f.received) >= conns && f.pending == 0
		changed := f.changed
		f.mu.Unlock()
		if done {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return fmt.Errorf("fault %v: waiting for %d settled connections: %w", f.Kind, conns, ctx.Err())
		}
	}
}

// notifyLocked wakes every Wait; f.mu must be held.
func (f *FaultPeer) notifyLocked() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *FaultPeer) acceptLoop() {
	defer f.wg.Done()
	for {
		c, err := f.ln.Accept()
		if err != nil {
			return // listener closed at cleanup
		}
		conn, ok := f.register(c)
		if !ok {
			c.Close()
			return
		}
		f.wg.Add(1)
		go func() {
			defer f.wg.Done()
			defer conn.finish()
			f.serve(conn)
		}()
	}
}

// faultConn is one accepted connection; reads through it are recorded.
type faultConn struct {
	net.Conn
	f       *FaultPeer
	raw     net.Conn // the TCP connection, for closing
	idx     int
	settled bool // guarded by f.mu
}

func (f *FaultPeer) register(c net.Conn) (*faultConn, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return nil, false
	}
	f.open[c] = struct{}{}
	f.received = append(f.received, []byte{})
	f.pending++
	f.notifyLocked()
	return &faultConn{Conn: c, f: f, raw: c, idx: len(f.received) - 1}, true
}

func (c *faultConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.f.mu.Lock()
	c.f.received[c.idx] = append(c.f.received[c.idx], p[:n]...)
	if n > 0 {
		c.f.notifyLocked()
	}
	c.f.mu.Unlock()
	if err != nil {
		c.settle()
	}
	return n, err
}

// restart forgets what the connection received so far: what arrives
// after a STARTTLS upgrade is recorded alone.
func (c *faultConn) restart() {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	c.f.received[c.idx] = c.f.received[c.idx][:0]
}

// settle marks the connection's input as complete.
func (c *faultConn) settle() {
	c.f.mu.Lock()
	defer c.f.mu.Unlock()
	if !c.settled {
		c.settled = true
		c.f.pending--
		c.f.notifyLocked()
	}
}

func (c *faultConn) finish() {
	c.raw.Close()
	c.settle()
	c.f.mu.Lock()
	delete(c.f.open, c.raw)
	c.f.mu.Unlock()
}

// close stops accepting, cuts every connection and waits for the handlers.
func (f *FaultPeer) close() {
	f.mu.Lock()
	f.closed = true
	close(f.stop)
	for c := range f.open {
		c.Close()
	}
	f.mu.Unlock()
	f.ln.Close()
	f.wg.Wait()
}
