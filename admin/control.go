package admin

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// ControlSocket is the control socket's file name inside the data
// directory.
const ControlSocket = "control.sock"

type controlKey struct{}

// controlPeer tells whether a request came over the control socket, and
// the peer's uid.
func controlPeer(ctx context.Context) (string, bool) {
	uid, ok := ctx.Value(controlKey{}).(string)
	return uid, ok
}

// ListenControl opens the control socket at path, mode 0600, accepting
// only peers that are root or run as the server's own uid. A socket file
// left by a crashed server is replaced; one a live server answers on is
// not. Serve it with ControlServer.
func (s *Server) ListenControl(path string) (net.Listener, error) {
	return s.listenControl(path, ownOrRoot)
}

func (s *Server) listenControl(path string, allow func(uint32) bool) (net.Listener, error) {
	ln, err := listenUnix(path)
	if err != nil {
		return nil, err
	}
	return &peerListener{Listener: ln, allow: allow, log: func(uid uint32, err error) {
		s.log.Warn("control socket: refused a peer", "uid", uid, "err", err)
	}}, nil
}

func listenUnix(path string) (net.Listener, error) {
	if st, err := os.Lstat(path); err == nil {
		if st.Mode().Type() != fs.ModeSocket {
			return nil, fmt.Errorf("control socket %s: exists and is not a socket", path)
		}
		if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("control socket %s: another postern is serving on it", path)
		}
		if err := os.Remove(path); err != nil {
			return nil, fmt.Errorf("control socket %s: %w", path, err)
		}
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	// The data directory is 0700 too, so nobody else reaches the socket
	// between Listen and Chmod.
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket %s: %w", path, err)
	}
	return ln, nil
}

// peerListener accepts only peers whose uid allow accepts: root or the
// server's own uid. Others are closed before a byte is read.
type peerListener struct {
	net.Listener
	allow func(uid uint32) bool
	log   func(uid uint32, err error)
}

// peerConn remembers the peer's uid for the request context.
type peerConn struct {
	net.Conn
	uid uint32
}

func (l *peerListener) Accept() (net.Conn, error) {
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		uid, err := peerUID(c)
		if err == nil && l.allow(uid) {
			return &peerConn{Conn: c, uid: uid}, nil
		}
		l.log(uid, err)
		c.Close()
	}
}

// ownOrRoot is the control socket's rule: root or the server's own uid.
func ownOrRoot(uid uint32) bool {
	return uid == 0 || uid == uint32(os.Getuid())
}

// ControlServer is the http.Server for a listener from ListenControl:
// the same handler as the HTTP API, where every request acts as admin
// "cli:<uid>" without CSRF or re-verification (the peer is the operator).
func (s *Server) ControlServer() *http.Server {
	srv := s.HTTPServer(s.Handler())
	srv.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
		if pc, ok := c.(*peerConn); ok {
			return context.WithValue(ctx, controlKey{}, strconv.FormatUint(uint64(pc.uid), 10))
		}
		return ctx
	}
	return srv
}

// ServeControl serves ControlServer on ln until ctx ends.
func (s *Server) ServeControl(ctx context.Context, ln net.Listener) error {
	return serveUntil(ctx, s.ControlServer(), ln)
}

var errNoPeerCred = errors.New("peer credentials unavailable on this system")
