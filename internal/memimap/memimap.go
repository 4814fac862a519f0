// Package memimap is an in-process IMAP server holding mail in memory: the
// upstream of `postern demo`, and a fast upstream for tests that must not
// depend on an installed Dovecot. It can act as a Dovecot-style master user.
package memimap

import (
	"bytes"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"strings"
	"sync"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"
	"github.com/emersion/go-sasl"
)

// Options are the optional parts of an in-process IMAP upstream.
type Options struct {
	// MasterUser and MasterPassword, when both set, let SASL PLAIN with
	// authzid = any user and authcid = MasterUser log in as that user, the
	// way a Dovecot master user does.
	MasterUser     string
	MasterPassword string
	// TLSConfig, when set, makes the server offer STARTTLS.
	TLSConfig *tls.Config
	// Logger receives the IMAP library's error messages at debug level;
	// nil means slog.Default().
	Logger *slog.Logger
}

// Server is an in-process IMAP server holding mail in memory, for the demo
// and for tests that must not depend on an installed Dovecot.
type Server struct {
	ln     net.Listener
	srv    *imapserver.Server
	opts   Options
	users  map[string]memUser
	done   chan struct{} // closed when Serve returns
	closer sync.Once
	err    error
}

type memUser struct {
	password string
	mail     *imapmemserver.User
}

// Start serves users (name → password) on addr ("127.0.0.1:0" when
// empty) over plain TCP, each with a few messages in INBOX. At most one
// Options may be given.
func Start(addr string, users map[string]string, opts ...Options) (*Server, error) {
	if len(opts) > 1 {
		return nil, errors.New("start memory IMAP: more than one Options")
	}
	m := &Server{users: make(map[string]memUser, len(users)), done: make(chan struct{})}
	if len(opts) == 1 {
		m.opts = opts[0]
	}
	if m.opts.Logger == nil {
		m.opts.Logger = slog.Default()
	}
	for name, pass := range users {
		u := memUser{password: pass, mail: imapmemserver.NewUser(name, pass)}
		m.users[name] = u
		if err := m.seed(name, u); err != nil {
			return nil, err
		}
	}
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start memory IMAP: %w", err)
	}
	m.ln = ln
	m.srv = imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return &memSession{srv: m}, nil, nil
		},
		Caps:         imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}},
		Logger:       debugLogger{m.opts.Logger.With("peer", "memimap")},
		TLSConfig:    m.opts.TLSConfig,
		InsecureAuth: true,
	})
	go func() {
		defer close(m.done)
		if err := m.srv.Serve(ln); err != nil {
			m.opts.Logger.Error("memory IMAP stopped", "addr", ln.Addr().String(), "err", err)
		}
	}()
	return m, nil
}

func (m *Server) seed(name string, u memUser) error {
	// The mailboxes a fresh account at most providers starts with.
	for _, mbox := range []string{"INBOX", "Sent", "Drafts", "Trash"} {
		if err := u.mail.Create(mbox, nil); err != nil {
			return fmt.Errorf("create %s for %s: %w", mbox, name, err)
		}
	}
	for _, raw := range seedMessages(name) {
		if err := m.Append(name, "INBOX", raw); err != nil {
			return err
		}
	}
	return nil
}

// Addr is the address the server listens on.
func (m *Server) Addr() string { return m.ln.Addr().String() }

// Close stops listening, ends every session and waits for the accept loop.
func (m *Server) Close() error {
	m.closer.Do(func() {
		m.err = m.srv.Close()
		<-m.done
	})
	return m.err
}

// Append adds raw to user's mailbox, creating the mailbox if needed. The
// message's internal date is its Date header when it has a valid one.
func (m *Server) Append(user, mailbox string, raw []byte) error {
	u, ok := m.users[user]
	if !ok {
		return fmt.Errorf("append: no user %q", user)
	}
	var exists *imap.Error
	if err := u.mail.Create(mailbox, nil); err != nil && !(errors.As(err, &exists) && exists.Code == imap.ResponseCodeAlreadyExists) {
		return fmt.Errorf("append: create %s: %w", mailbox, err)
	}
	var opts imap.AppendOptions
	if msg, err := mail.ReadMessage(bytes.NewReader(raw)); err == nil {
		opts.Time, _ = msg.Header.Date()
	}
	if _, err := u.mail.Append(mailbox, bytes.NewReader(raw), &opts); err != nil {
		return fmt.Errorf("append to %s/%s: %w", user, mailbox, err)
	}
	return nil
}

// login checks a credential. A master credential logs in as authzid.
func (m *Server) login(authzid, authcid, password string) (*imapmemserver.User, error) {
	if authzid == "" || authzid == authcid {
		u, ok := m.users[authcid]
		if !ok || !equalSecret(password, u.password) {
			return nil, imapserver.ErrAuthFailed
		}
		return u.mail, nil
	}
	master := m.opts.MasterUser != "" && m.opts.MasterPassword != "" &&
		authcid == m.opts.MasterUser && equalSecret(password, m.opts.MasterPassword)
	u, ok := m.users[authzid]
	if !master || !ok {
		return nil, imapserver.ErrAuthFailed
	}
	return u.mail, nil
}

func equalSecret(got, want string) bool {
	return subtle.ConstantTimeCompare([]byte(got), []byte(want)) == 1
}

// memSession adds SASL PLAIN with an authorization identity to the memory
// backend, whose own login knows only LOGIN-style credentials.
type memSession struct {
	*imapmemserver.UserSession // nil until logged in
	srv                        *Server
}

var _ imapserver.SessionSASL = (*memSession)(nil)

func (s *memSession) Login(username, password string) error {
	return s.start(s.srv.login("", username, password))
}

func (s *memSession) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

func (s *memSession) Authenticate(mech string) (sasl.Server, error) {
	if !strings.EqualFold(mech, sasl.Plain) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Text: "SASL mechanism not supported"}
	}
	return sasl.NewPlainServer(func(authzid, authcid, password string) error {
		return s.start(s.srv.login(authzid, authcid, password))
	}), nil
}

func (s *memSession) start(u *imapmemserver.User, err error) error {
	if err != nil {
		return err
	}
	s.UserSession = imapmemserver.NewUserSession(u)
	return nil
}

// debugLogger puts the IMAP library's messages (mostly clients that hung
// up) into slog at debug level.
type debugLogger struct{ l *slog.Logger }

func (d debugLogger) Printf(format string, args ...any) {
	d.l.Debug(fmt.Sprintf(format, args...))
}
