package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"time"
)

var errNoServerTLS = errors.New("implicit TLS listener without a TLS configuration")

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
			s.end(reasonLogin)
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

// ReadLoginLoop is ReadLogin of a line protocol (POP3, SMTP): next handles
// one command and returns a login once one is complete. The connection's
// deadline follows ctx (BindDeadline on c, the connection as accepted or
// upgraded): it is set to ctx's deadline, stays there on return, and moves
// into the past when ctx ends, and the error then says why.
func ReadLoginLoop(ctx context.Context, c net.Conn, next func(context.Context) (*Login, error)) (Login, error) {
	release := BindDeadline(ctx, c.SetDeadline)
	defer release()
	for {
		login, err := next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return Login{}, fmt.Errorf("pre-auth: %w: %w", context.Cause(ctx), err)
			}
			return Login{}, err
		}
		if login != nil {
			return *login, nil
		}
	}
}

// isTimeout reports a passed deadline on a connection.
func isTimeout(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded)
}
