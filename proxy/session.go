package proxy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern-dev/postern/authstore"
)

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
	reason Reason   // why the session ends; no Text: no Bye
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
	return withGrant(SessionInfo{
		ID:       s.id,
		Protocol: s.srv.cfg.Protocol.Name(),
		Remote:   s.remote,
		Client:   s.client,
		Start:    s.start,
		BytesIn:  s.bytesIn.Load(),
		BytesOut: s.bytesOut.Load(),
	}, s.grant)
}

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

// run owns the session from accept to close.
func (s *session) run() {
	defer s.cancel()
	defer s.raw.Close()
	defer s.cleanup()
	if fe, c, up := s.open(); up != nil {
		s.relay(fe, c, up)
	}
}
