package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

type dialResult struct {
	conn *Conn
	err  error
}

// login decides one attempt through the login skeleton (Admit): authstore's
// verdict, the upstream dial (which overlaps the verdict), the upstream
// login and the registration. It logs the attempt; on success the session
// is registered and logged in upstream.
func (s *session) login(ctx context.Context, l Login) (*Conn, UpstreamResult, error) {
	start := time.Now()
	up, res, grant, err := s.tryLogin(ctx, l)
	grant.Settle(err, auditReason(err))
	result := resultOf(err)
	s.srv.cfg.Metrics.login(s.srv.proto, result)
	user := grant.Username
	if user == "" {
		user = safetext.Raw(l.Username)
	}
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	s.srv.log.LogAttrs(ctx, slog.LevelInfo, "login",
		slog.String("session", s.id), slog.String("user", user),
		slog.String("source", s.remote.String()), slog.String("result", result),
		slog.String("reason", reason), slog.Duration("duration", time.Since(start)))
	return up, res, err
}

func (s *session) tryLogin(ctx context.Context, l Login) (*Conn, UpstreamResult, authstore.Grant, error) {
	up, ad, err := s.authenticate(ctx, l)
	if err != nil {
		var grant authstore.Grant
		if ad != nil {
			grant = ad.Grant // granted, but the upstream could not be reached
		}
		return nil, UpstreamResult{}, grant, err
	}
	grant := ad.Grant
	if !s.setUpstream(rawConn(up)) {
		return nil, UpstreamResult{}, grant, fmt.Errorf("session ended during login: %w", ErrUpstream)
	}
	res, err := s.upstreamLogin(ctx, up, grant.Username, ClientInfo{Addr: s.remote, SessionID: s.id, Hello: l.Hello})
	if err != nil {
		closeConn(up)
		if errors.Is(err, ErrLoginRefused) && s.srv.cfg.LoginRefused != nil {
			s.srv.cfg.LoginRefused()
		}
		return nil, UpstreamResult{}, grant, err
	}
	if s.srv.cfg.LoginDone != nil {
		s.srv.cfg.LoginDone()
	}
	s.grant, s.client = grant, l.ClientName
	if err := ad.register(s); err != nil {
		closeConn(up)
		return nil, UpstreamResult{}, grant, err
	}
	s.srv.cfg.Metrics.sessionsLive(s.srv.proto, 1)
	s.registered = true
	return up, res, grant, nil
}

// authenticate admits the login while the upstream is being dialed: the
// client then waits for the slower of the two, not for both in a row. The
// dial starts when authstore admits the attempt past its rate limiter (or
// after the verdict, for an authenticator that does not say), so a
// throttled guess never costs the upstream a connection. A failed check
// closes the fresh connection before a byte is sent on it.
func (s *session) authenticate(ctx context.Context, l Login) (*Conn, *Admission, error) {
	dialCtx, cancelDial := context.WithCancel(ctx)
	defer cancelDial()
	dialed := make(chan dialResult, 1)
	started := false
	startDial := func() {
		if !started {
			started = true
			go func() {
				c, err := s.srv.dial(dialCtx)
				dialed <- dialResult{c, err}
			}()
		}
	}
	ad, err := Admit(ctx, s.srv.reg, s.srv.cfg.Auth, authstore.Attempt{
		Protocol: s.srv.cfg.Protocol.Name(),
		Username: l.Username,
		Secret:   l.Secret,
		Source:   s.remote.Addr(),
		Client:   l.ClientName,
		Admitted: startDial,
		Upstream: true,
	})
	if err != nil {
		cancelDial()
		if started {
			if r := <-dialed; r.conn != nil {
				closeConn(r.conn)
			}
		}
		return nil, nil, err
	}
	startDial()
	r := <-dialed
	if r.err != nil {
		return nil, ad, r.err
	}
	return r.conn, ad, nil
}

// upstreamLogin runs the protocol's login under LoginTimeout, both as a
// context and as a connection deadline, so that an adapter doing plain
// blocking I/O is bounded too.
func (s *session) upstreamLogin(ctx context.Context, up *Conn, user string, info ClientInfo) (UpstreamResult, error) {
	lt := s.srv.lim.LoginTimeout
	ctx, cancel := context.WithTimeout(ctx, lt)
	defer cancel()
	up.SetDeadline(time.Now().Add(lt))
	res, err := s.srv.cfg.Protocol.UpstreamLogin(ctx, up, user, info)
	if err == nil {
		err = up.W.Flush()
	}
	if err != nil {
		if !errors.Is(err, ErrUpstream) {
			err = fmt.Errorf("upstream login: %w: %w", ErrUpstream, err)
		}
		return UpstreamResult{}, err
	}
	up.SetDeadline(time.Time{})
	return res, nil
}

// accept answers a successful login. It reports false when the session
// must close instead of relaying.
func (s *session) accept(fe Frontend, c *Conn, l Login, res UpstreamResult) bool {
	s.raw.SetReadDeadline(time.Time{})
	// A client that does not read must not hold the answer forever.
	s.raw.SetWriteDeadline(time.Now().Add(s.srv.lim.LoginTimeout))
	if s.ending.Load() {
		return false
	}
	if err := fe.Accept(l, res, s.grant); err != nil {
		s.stop()
		return false
	}
	if err := c.W.Flush(); err != nil {
		s.stop()
		return false
	}
	return true
}

// authError keeps authstore's answers and turns anything else (a context
// ending, an unexpected failure) into "try later", never "wrong password".
func authError(err error) error {
	if errors.Is(err, authstore.ErrUnauthorized) || errors.Is(err, authstore.ErrUnavailable) {
		return err
	}
	return fmt.Errorf("%w: %w", authstore.ErrUnavailable, err)
}

func resultOf(err error) string {
	switch {
	case err == nil:
		return resultOK
	case errors.Is(err, authstore.ErrThrottled):
		return resultThrottled
	case errors.Is(err, authstore.ErrUnauthorized):
		return resultDenied
	case errors.Is(err, ErrUpstream):
		return resultUpstreamError
	default:
		return resultUnavailable
	}
}

// auditReason says, for the audit log, why a granted login did not end in
// a session; authstore records that instead of a sign-in, because it is
// not what the client was answered.
func auditReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrLoginRefused):
		return "upstream_refused"
	case errors.Is(err, ErrUpstream):
		return "upstream_error"
	case errors.Is(err, errKickedDuringLogin):
		return "ended_during_login"
	case errors.Is(err, errUserControl):
		return "invalid_username"
	}
	return resultOf(err)
}

// rawConn is the TCP connection under c: closing it never blocks on a TLS
// close_notify to a peer that does not read.
func rawConn(c *Conn) net.Conn {
	if t, ok := c.Conn.(*tls.Conn); ok {
		return t.NetConn()
	}
	return c.Conn
}

func closeConn(c *Conn) {
	rawConn(c).Close()
}
