package proxy

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// byeTimeout bounds a Bye to a client that does not read, so that a kick
// closes the connection well within its one-second promise.
const byeTimeout = 300 * time.Millisecond

var errNoServerTLS = errors.New("implicit TLS listener without a TLS configuration")

// session is one client connection from accept to close.
type session struct {
	srv    *Server
	id     string
	raw    net.Conn // as accepted; deadlines and Close reach through TLS
	remote netip.AddrPort
	start  time.Time
	ctx    context.Context
	cancel context.CancelFunc

	ending atomic.Bool
	mu     sync.Mutex
	reason string   // why the session ends; empty: no Bye
	upRaw  net.Conn // the upstream TCP connection, once dialed

	// Set before registration, read-only afterwards.
	grant      authstore.Grant
	client     string
	registered bool // owned by the session's goroutine

	bytesIn, bytesOut atomic.Int64
}

func newSession(srv *Server, c net.Conn, remote netip.AddrPort) *session {
	ctx, cancel := context.WithCancel(context.Background())
	var id [16]byte
	rand.Read(id[:])
	return &session{
		srv: srv, id: hex.EncodeToString(id[:]), raw: c, remote: remote,
		start: time.Now(), ctx: ctx, cancel: cancel,
	}
}

func (s *session) info() SessionInfo {
	return SessionInfo{
		ID:           s.id,
		Username:     s.grant.Username,
		UserID:       s.grant.UserID,
		CredentialID: s.grant.CredentialID(),
		AppPassName:  s.grant.AppPassName,
		Expires:      s.grant.Expires,
		Protocol:     s.srv.cfg.Protocol.Name(),
		Remote:       s.remote,
		Client:       s.client,
		Start:        s.start,
		BytesIn:      s.bytesIn.Load(),
		BytesOut:     s.bytesOut.Load(),
	}
}

// end starts ending the session from any goroutine without waiting: it
// wakes every blocked read and closes the upstream. The session's own
// goroutine then says Bye(reason) (unless reason is empty) and closes the
// client connection, so that Bye never races another write to the client.
func (s *session) end(reason string) bool {
	s.mu.Lock()
	if s.ending.Load() {
		s.mu.Unlock()
		return false
	}
	s.reason = reason
	s.ending.Store(true)
	up := s.upRaw
	s.mu.Unlock()
	s.cancel()
	// The flag is set before the deadlines: code that moves a deadline
	// checks the flag afterwards, so one of the two always wins.
	s.raw.SetReadDeadline(time.Unix(1, 0)) // in the past: wakes blocked reads
	s.raw.SetWriteDeadline(time.Now().Add(byeTimeout))
	if up != nil {
		up.Close()
	}
	return true
}

// stop ends the session without a Bye (the client left or broke).
func (s *session) stop() { s.end("") }

// setUpstream records the upstream connection so that end can close it; it
// reports false (and closes c) when the session is already ending.
func (s *session) setUpstream(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ending.Load() {
		c.Close()
		return false
	}
	s.upRaw = c
	return true
}

// bye tells the client why the session ends, if end gave a reason.
func (s *session) bye(fe Frontend) {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	if reason == "" {
		return
	}
	s.raw.SetWriteDeadline(time.Now().Add(byeTimeout))
	fe.Bye(reason)
}

// run owns the session from accept to close.
func (s *session) run() {
	defer s.cancel()
	defer s.raw.Close()
	defer s.cleanup()
	if fe, c, up := s.open(); up != nil {
		s.relay(fe, c, up)
	}
}

// open runs everything before the relay under the pre-auth deadline. It
// returns the logged-in upstream, or a nil one when the session is over.
func (s *session) open() (Frontend, *Conn, *Conn) {
	deadline := s.start.Add(s.srv.lim.PreAuthTimeout)
	s.raw.SetDeadline(deadline)
	ctx, cancel := context.WithDeadline(s.ctx, deadline)
	defer cancel() // its timer must not outlive the login
	c, serverTLS, err := s.handshake(ctx)
	if err != nil {
		s.srv.log.Debug("tls handshake failed", "session", s.id, "source", s.remote.String(), "err", err)
		return nil, nil, nil
	}
	fe := s.srv.cfg.Protocol.NewFrontend(c, serverTLS)
	if err := fe.Greet(); err != nil {
		return nil, nil, nil
	}
	up, ok := s.preauth(ctx, fe, c)
	if !ok {
		if !s.ending.Load() && !time.Now().Before(deadline) {
			s.end("login timeout")
		}
		s.bye(fe)
		return nil, nil, nil
	}
	return fe, c, up
}

// handshake completes implicit TLS and returns the client connection and
// the configuration the front-end may offer STARTTLS with.
func (s *session) handshake(ctx context.Context) (*Conn, *tls.Config, error) {
	if !s.srv.cfg.ImplicitTLS {
		return NewConn(s.raw), s.srv.cfg.TLS, nil
	}
	if s.srv.cfg.TLS == nil {
		return nil, nil, errNoServerTLS
	}
	t := tls.Server(s.raw, s.srv.cfg.TLS)
	if err := t.HandshakeContext(ctx); err != nil {
		return nil, nil, err
	}
	return NewConn(t), nil, nil
}

// preauth runs logins until one succeeds (and returns the logged-in
// upstream) or the client leaves, the deadline passes or the session ends.
func (s *session) preauth(ctx context.Context, fe Frontend, c *Conn) (*Conn, bool) {
	for {
		l, err := fe.ReadLogin(ctx)
		if err != nil || s.ending.Load() {
			return nil, false
		}
		up, res, err := s.login(ctx, l)
		if err == nil {
			return up, s.accept(fe, c, l, res)
		}
		if s.ending.Load() {
			return nil, false
		}
		if err := fe.Reject(l, err); err != nil {
			return nil, false
		}
	}
}

// isTimeout reports a passed deadline on a connection.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
