// Package memsmtp is an in-process submission server (go-smtp): the SMTP
// upstream of `postern demo`. It takes AUTH PLAIN from a master user on
// behalf of one of its users, as Postfix with Dovecot SASL does, lets that
// user send only from addresses whose local part is the user's name (the
// rule Postfix's smtpd_sender_login_maps keeps), and hands each message to
// a delivery function for every recipient who is one of its users.
package memsmtp

import (
	"bytes"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// maxMessage bounds a message, as Postfix's message_size_limit does.
const maxMessage = 10 << 20

// Options configure a Server. All are required.
type Options struct {
	Hostname       string   // in the greeting and the Received header
	Users          []string // who may send, and receive
	MasterUser     string
	MasterPassword string
	// Deliver stores a message for a recipient among Users.
	Deliver func(user string, msg []byte) error
}

// Server is a running submission server.
type Server struct {
	ln   net.Listener
	srv  *smtp.Server
	opts Options
	done chan struct{}
}

// Start serves on addr over plain TCP, which postern's login to it needs
// no TLS for on loopback.
func Start(addr string, opts Options) (*Server, error) {
	if opts.MasterUser == "" || opts.MasterPassword == "" || opts.Deliver == nil {
		return nil, errors.New("start memory SMTP: master user, password and delivery are required")
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start memory SMTP: %w", err)
	}
	s := &Server{ln: ln, opts: opts, done: make(chan struct{})}
	s.srv = smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		return &session{srv: s, conn: c}, nil
	}))
	s.srv.Domain = opts.Hostname
	s.srv.AllowInsecureAuth = true
	s.srv.MaxMessageBytes = maxMessage
	s.srv.MaxRecipients = 50
	s.srv.ReadTimeout, s.srv.WriteTimeout = 10*time.Minute, time.Minute
	s.srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() {
		defer close(s.done)
		_ = s.srv.Serve(ln)
	}()
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops the server and ends its sessions.
func (s *Server) Close() error {
	err := s.srv.Close()
	<-s.done
	return err
}

// login accepts the master credential on behalf of a known user.
func (s *Server) login(authzid, authcid, password string) (string, error) {
	master := subtle.ConstantTimeCompare([]byte(authcid), []byte(s.opts.MasterUser)) == 1 &&
		subtle.ConstantTimeCompare([]byte(password), []byte(s.opts.MasterPassword)) == 1
	if !master || !slices.Contains(s.opts.Users, authzid) {
		return "", smtp.ErrAuthFailed
	}
	return authzid, nil
}

// session is one client's mail transaction.
type session struct {
	srv  *Server
	conn *smtp.Conn
	user string   // "" before AUTH
	rcpt []string // the users the message goes to
}

var _ smtp.AuthSession = (*session)(nil)

func (s *session) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *session) Auth(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, smtp.ErrAuthUnknownMechanism
	}
	return sasl.NewPlainServer(func(authzid, authcid, password string) error {
		user, err := s.srv.login(authzid, authcid, password)
		s.user = user
		return err
	}), nil
}

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	if s.user == "" {
		return smtp.ErrAuthRequired
	}
	if strings.ToLower(localPart(from)) != s.user {
		return &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1},
			Message: "Sender address rejected: not owned by user " + s.user}
	}
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	user := strings.ToLower(localPart(to))
	if !slices.Contains(s.srv.opts.Users, user) {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1},
			Message: "Recipient address rejected: the demo delivers only to its own users"}
	}
	s.rcpt = append(s.rcpt, user)
	return nil
}

// Data delivers the message with a Received header that names who sent
// it, as Postfix's smtpd_sasl_authenticated_header does.
func (s *session) Data(r io.Reader) error {
	body, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	var msg bytes.Buffer
	fmt.Fprintf(&msg, "Received: from %s by %s (postern demo) with ESMTPSA\r\n\t(Authenticated sender: %s);\r\n\t%s\r\n",
		strings.Map(printable, s.conn.Hostname()), s.srv.opts.Hostname, s.user, time.Now().UTC().Format(time.RFC1123Z))
	msg.Write(body)
	for _, user := range s.rcpt {
		if err := s.srv.opts.Deliver(user, msg.Bytes()); err != nil {
			return fmt.Errorf("deliver to %s: %w", user, err)
		}
	}
	return nil
}

func (s *session) Reset()        { s.rcpt = nil }
func (s *session) Logout() error { return nil }

// localPart is the part of an address before its last "@".
func localPart(addr string) string {
	if i := strings.LastIndexByte(addr, '@'); i >= 0 {
		return addr[:i]
	}
	return addr
}

// printable keeps a client's EHLO name to printable ASCII in a header.
func printable(r rune) rune {
	if r <= ' ' || r > '~' {
		return -1
	}
	return r
}
