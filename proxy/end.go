package proxy

import "time"

// byeTimeout bounds a Bye to a client that does not read, so that a kick
// closes the connection well within its one-second promise.
const byeTimeout = 300 * time.Millisecond

// end starts ending the session from any goroutine without waiting: it
// wakes every blocked read and closes the upstream. The session's own
// goroutine then says Bye(reason) (unless reason has no text) and closes
// the client connection, so that Bye never races another write to the
// client.
func (s *session) end(reason Reason) bool {
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
func (s *session) stop() { s.end(Reason{}) }

// bye tells the client why the session ends, if end gave a reason.
func (s *session) bye(fe Frontend) {
	s.mu.Lock()
	reason := s.reason
	s.mu.Unlock()
	if reason.Text == "" {
		return
	}
	s.raw.SetWriteDeadline(time.Now().Add(byeTimeout))
	fe.Bye(reason)
}

// cleanup runs when the session's goroutine ends.
func (s *session) cleanup() {
	s.mu.Lock()
	up := s.upRaw
	reason := s.reason
	s.mu.Unlock()
	if up != nil {
		up.Close()
	}
	if !s.registered {
		return
	}
	s.srv.reg.remove(s.id)
	s.srv.cfg.Metrics.sessionsLive(s.srv.proto, -1)
	if reason.Text == "" {
		reason.Text = "closed"
	}
	s.srv.log.Info("session ended", "session", s.id, "user", s.grant.Username,
		"credential", s.grant.CredentialID(), "source", s.remote.String(),
		"bytes_in", s.bytesIn.Load(), "bytes_out", s.bytesOut.Load(),
		"duration", time.Since(s.start), "reason", reason.Text)
}
