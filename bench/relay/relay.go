// Package relay is the floor any proxy pays: a TCP relay with no protocol
// or authentication logic, optionally terminating TLS. The benchmarks run
// it as a process next to the real proxies to see what relaying alone
// costs on the same machine.
package relay

import (
	"crypto/tls"
	"errors"
	"io"
	"log/slog"
	"net"
	"sync"
	"time"
)

// dialTimeout bounds the upstream connect.
const dialTimeout = 5 * time.Second

// Config says where to relay to.
type Config struct {
	Upstream string // host:port, plain TCP
	// TLS, when set, is terminated here: clients speak TLS, the upstream
	// gets plaintext.
	TLS    *tls.Config
	Logger *slog.Logger // nil discards
}

// Server relays every accepted connection to the upstream.
type Server struct {
	cfg Config
	log *slog.Logger
	wg  sync.WaitGroup
}

// New returns a server for cfg.
func New(cfg Config) *Server {
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Server{cfg: cfg, log: log}
}

// Serve accepts on ln until it is closed, then waits for the relays in
// progress and returns nil.
func (s *Server) Serve(ln net.Listener) error {
	defer s.wg.Wait()
	for {
		c, err := ln.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return nil
			}
			s.log.Warn("accept", "err", err)
			// Out of descriptors: let established relays use what remains.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		s.wg.Go(func() { s.relay(c) })
	}
}

// relay connects the upstream at once, without waiting for the client's
// first byte, and copies both ways. TLS, when configured, is negotiated
// lazily by the first read or write.
func (s *Server) relay(c net.Conn) {
	defer c.Close()
	up, err := net.DialTimeout("tcp", s.cfg.Upstream, dialTimeout)
	if err != nil {
		s.log.Warn("dial upstream", "err", err)
		return
	}
	defer up.Close()
	if s.cfg.TLS != nil {
		c = tls.Server(c, s.cfg.TLS)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		io.Copy(up, c)
		closeWrite(up)
	}()
	// The upstream ending its side ends the session: IMAP servers close
	// after LOGOUT, and a client that did not notice must not keep it.
	io.Copy(c, up)
	c.Close()
	<-done
}

func closeWrite(c net.Conn) {
	if cw, ok := c.(interface{ CloseWrite() error }); ok {
		cw.CloseWrite()
	}
}
