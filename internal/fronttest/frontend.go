package fronttest

import (
	"context"
	"crypto/tls"
	"io"
	"net"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// Mode says how a client reaches a front-end.
type Mode int

const (
	Cleartext Mode = iota // cleartext, no STARTTLS/STLS on this listener
	StartTLS              // cleartext, STARTTLS/STLS offered
	Implicit              // TLS from the first byte
)

// Decision is the test's answer to a login the front-end returned, in
// place of the session's: Reject with Err when it is set, else Accept with
// Upstream and Grant and then, when Bye is set, say goodbye with it (as a
// plain end: proxy.Reason{Text: Bye}).
type Decision struct {
	Err      error
	Upstream proxy.UpstreamResult
	Grant    authstore.Grant
	Bye      string
}

// Session is the server side of one front-end connection, driven as a
// proxy session would drive it, reduced to what the front-end sees: Greet,
// then ReadLogin until a login, the test's Decision, and again after a
// Reject. A failed ReadLogin or an Accept ends it and closes the
// connection.
type Session struct {
	fe      proxy.Frontend
	logins  chan proxy.Login
	decide  chan Decision
	decided chan error
	done    chan error
	stop    chan struct{}
}

// DriveFrontend runs a Frontend of p on the server end of a loopback TCP
// connection, with ctx as ReadLogin's context, and returns the client end
// (its greeting still unread) and the session.
func DriveFrontend(ctx context.Context, t testing.TB, p proxy.Protocol, mode Mode) (*Client, *Session) {
	t.Helper()
	cc, sc := linetest.TCPPair(t)
	serverTLS, clientTLS := testpeer.TLS(t)
	var offer *tls.Config
	switch mode {
	case StartTLS:
		offer = serverTLS
	case Implicit:
		// Both handshakes run when the ends first write and read.
		sc = tls.Server(sc, serverTLS)
		cc = tls.Client(cc, clientTLS)
	}
	s := &Session{logins: make(chan proxy.Login, 1), decide: make(chan Decision), decided: make(chan error, 1),
		done: make(chan error, 1), stop: make(chan struct{})}
	s.fe = p.NewFrontend(proxy.NewConn(sc), offer)
	go func() {
		err := s.drive(ctx)
		sc.Close() // as the session would: its end closes the connection
		s.done <- err
	}()
	t.Cleanup(func() {
		close(s.stop)
		cc.Close()
		<-s.done
	})
	return linetest.NewClient(t, cc, clientTLS), s
}

func (s *Session) drive(ctx context.Context) error {
	if err := s.fe.Greet(); err != nil {
		return err
	}
	for {
		l, err := s.fe.ReadLogin(ctx)
		if err != nil {
			return err
		}
		s.logins <- l
		var d Decision
		select {
		case d = <-s.decide:
		case <-s.stop:
			return nil
		}
		if d.Err != nil {
			err := s.fe.Reject(l, d.Err)
			s.decided <- err
			if err != nil {
				return err
			}
			continue
		}
		err = s.fe.Accept(l, d.Upstream, d.Grant)
		if d.Bye != "" {
			s.fe.Bye(proxy.Reason{Text: d.Bye})
		}
		s.decided <- err
		return err
	}
}

// Login waits for the front-end to return a login.
func (s *Session) Login(t testing.TB) proxy.Login {
	t.Helper()
	select {
	case l := <-s.logins:
		return l
	case err := <-s.done:
		s.done <- err
		t.Fatalf("front-end ended instead of returning a login: %v", err)
	case <-time.After(IOGuard):
		t.Fatal("no login returned")
	}
	return proxy.Login{}
}

// Decide answers the login Login returned and fails the test when the
// front-end's Reject or Accept fails.
func (s *Session) Decide(t testing.TB, d Decision) {
	t.Helper()
	s.decide <- d
	if err := <-s.decided; err != nil {
		t.Fatalf("answering the login: %v", err)
	}
}

// Bye says goodbye while ReadLogin runs, as a kick would.
func (s *Session) Bye(reason string) { s.fe.Bye(proxy.Reason{Text: reason}) }

// Result waits for the front-end to finish and returns why it did: nil
// after an Accept, else ReadLogin's error. A login returned meanwhile
// fails the test.
func (s *Session) Result(t testing.TB) error {
	t.Helper()
	select {
	case err := <-s.done:
		s.done <- err
		return err
	case l := <-s.logins:
		t.Fatalf("front-end returned a login %+v, want it to end", l)
	case <-time.After(IOGuard):
		t.Fatal("front-end did not finish")
	}
	return nil
}

// Pending is the number of logins returned and not yet taken by Login.
func (s *Session) Pending() int { return len(s.logins) }

// ScriptConn plays a fixed client input R and collects the replies in W,
// for driving a Frontend without a network (fuzz targets). Methods a
// front-end must not need stay unimplemented and would panic.
type ScriptConn struct {
	net.Conn
	R io.Reader
	W io.Writer
}

func (c *ScriptConn) Read(b []byte) (int, error)  { return c.R.Read(b) }
func (c *ScriptConn) Write(b []byte) (int, error) { return c.W.Write(b) }

// ContextEnds are the two ways a context ends a blocked read: cancelled
// (by the test, while waiting) and a deadline already past.
var ContextEnds = []struct {
	Name string
	Ctx  func() (context.Context, context.CancelFunc)
	Want error
}{
	{"canceled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
	{"deadline passed", func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	}, context.DeadlineExceeded},
}
