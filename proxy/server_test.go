package proxy

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/linetest"
)

// flakyListener fails Accept with EMFILE a number of times, then with err
// if set, then accepts.
type flakyListener struct {
	net.Listener
	emfile atomic.Int32
	err    error
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.emfile.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	if l.err != nil {
		return nil, l.err
	}
	return l.Listener.Accept()
}

func serveFlaky(t *testing.T, emfile int32, err error) (*Server, *flakyListener, chan error) {
	t.Helper()
	return serveFlakyLogged(t, emfile, err, nil)
}

func serveFlakyLogged(t *testing.T, emfile int32, err error, log *slog.Logger) (*Server, *flakyListener, chan error) {
	t.Helper()
	ln, lerr := net.Listen("tcp", "127.0.0.1:0")
	if lerr != nil {
		t.Fatal(lerr)
	}
	fl := &flakyListener{Listener: ln, err: err}
	fl.emfile.Store(emfile)
	srv := NewServer(ServerConfig{Protocol: lineProto{}, Auth: &fakeAuth{}, Upstream: Upstream{Address: downAddr(t), Security: None},
		Logger: log})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(fl) }()
	t.Cleanup(func() {
		srv.Shutdown(context.Background())
		ln.Close()
	})
	return srv, fl, served
}

// TestS6_AcceptBackoff: running out of descriptors pauses the accept loop
// instead of ending it; any other accept error ends Serve with that error.
func TestS6_AcceptBackoff(t *testing.T) {
	t.Run("EMFILE then a client", func(t *testing.T) {
		_, fl, _ := serveFlaky(t, 3, nil)
		cl := linetest.Dial(t, fl.Addr().String(), nil, false)
		cl.ExpectLines("HELLO")
		if n := fl.emfile.Load(); n >= 0 {
			t.Errorf("%d EMFILE errors left unconsumed", n+1)
		}
	})
	t.Run("logged once", func(t *testing.T) {
		// A loop stuck without descriptors says so once, and once more when
		// it accepts again, however many retries lay between.
		var buf syncBuffer
		_, fl, _ := serveFlakyLogged(t, 6, nil, slog.New(slog.NewTextHandler(&buf, nil)))
		cl := linetest.Dial(t, fl.Addr().String(), nil, false)
		cl.ExpectLines("HELLO")
		eventually(t, "the recovery to be logged", func() bool { return strings.Contains(buf.String(), "accepting again") })
		log := buf.String()
		if n := strings.Count(log, "accept failed"); n != 1 {
			t.Errorf("%d lines about the failed accepts, want 1:\n%s", n, log)
		}
		if !strings.Contains(log, "failed_accepts=6") {
			t.Errorf("the recovery line does not count the 6 failed accepts:\n%s", log)
		}
	})
	t.Run("shutdown during the pause", func(t *testing.T) {
		srv, fl, served := serveFlaky(t, 1<<30, nil)
		// The loop backs off up to a second between errors; Shutdown must
		// not wait for the pause to end.
		eventually(t, "the backoff to grow", func() bool { return fl.emfile.Load() <= 1<<30-7 })
		if err := srv.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-served:
			if err != nil {
				t.Errorf("Serve = %v, want nil after Shutdown", err)
			}
		case <-time.After(ioTimeout):
			t.Fatal("Serve did not return")
		}
	})
	t.Run("fatal error", func(t *testing.T) {
		boom := errors.New("listener broken")
		_, _, served := serveFlaky(t, 0, boom)
		select {
		case err := <-served:
			if !errors.Is(err, boom) {
				t.Errorf("Serve = %v, want %v", err, boom)
			}
		case <-time.After(ioTimeout):
			t.Fatal("Serve did not return")
		}
	})
	t.Run("serve after shutdown", func(t *testing.T) {
		srv, _, _ := serveFlaky(t, 0, nil)
		srv.Shutdown(context.Background())
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		if err := srv.Serve(ln); err != nil {
			t.Errorf("Serve after Shutdown = %v", err)
		}
		if _, err := net.Dial("tcp", ln.Addr().String()); err == nil {
			t.Error("the listener was left open")
		}
	})
}
