// Package mempop3 is an in-process POP3 server (RFC 1939, with CAPA,
// UIDL, TOP and SASL PLAIN from RFC 2449 and RFC 5034) over messages held
// in memory: the POP3 upstream of `postern demo`, which serves the demo's
// IMAP INBOX through it. Deletions last for the session only, so every
// demo login sees the same mailbox.
package mempop3

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Server serves users' mailboxes.
type Server struct {
	ln    net.Listener
	users map[string]string // name → password
	mail  func(user string) ([][]byte, error)
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns map[net.Conn]struct{}
}

// Start serves users (name → password) on addr over plain TCP; mail
// returns a user's messages as they are at login.
func Start(addr string, users map[string]string, mail func(user string) ([][]byte, error)) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("start memory POP3: %w", err)
	}
	s := &Server{ln: ln, users: users, mail: mail, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.serve)
	return s, nil
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, ends every session and waits for them.
func (s *Server) Close() error {
	err := s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
	return err
}

func (s *Server) serve() {
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Go(func() {
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			(&session{srv: s, c: c, r: bufio.NewReader(c), w: bufio.NewWriter(c)}).run()
		})
	}
}

type session struct {
	srv     *Server
	c       net.Conn
	r       *bufio.Reader
	w       *bufio.Writer
	user    string // after USER
	msgs    [][]byte
	deleted map[int]bool
	authed  bool
}

const idle = 10 * time.Minute

func (s *session) run() {
	s.reply("+OK mempop3 ready")
	for {
		s.c.SetReadDeadline(time.Now().Add(idle))
		line, err := s.r.ReadString('\n')
		if err != nil || len(line) > 4096 {
			return
		}
		verb, arg, _ := strings.Cut(strings.TrimRight(line, "\r\n"), " ")
		if !s.command(strings.ToUpper(verb), arg) {
			return
		}
	}
}

// command answers one command; false ends the session.
func (s *session) command(verb, arg string) bool {
	switch verb {
	case "CAPA":
		s.lines("+OK", "USER", "UIDL", "TOP", "SASL PLAIN", ".")
	case "QUIT":
		s.reply("+OK bye")
		return false
	case "NOOP":
		s.reply("+OK")
	case "USER":
		if s.authed {
			return s.err("already logged in")
		}
		s.user = arg
		s.reply("+OK")
	case "PASS":
		s.login("", s.user, arg)
	case "AUTH":
		mech, ir, _ := strings.Cut(arg, " ")
		if !strings.EqualFold(mech, "PLAIN") || ir == "" {
			return s.err("only AUTH PLAIN with an initial response")
		}
		raw, err := base64.StdEncoding.DecodeString(ir)
		parts := strings.Split(string(raw), "\x00")
		if err != nil || len(parts) != 3 {
			return s.err("malformed AUTH PLAIN")
		}
		s.login(parts[0], parts[1], parts[2])
	default:
		if !s.authed {
			return s.err("log in first")
		}
		return s.transaction(verb, arg)
	}
	return true
}

func (s *session) login(authzid, user, password string) {
	want, ok := s.srv.users[user]
	if s.authed || (authzid != "" && authzid != user) || !ok ||
		subtle.ConstantTimeCompare([]byte(password), []byte(want)) != 1 {
		s.reply("-ERR [AUTH] invalid credentials")
		return
	}
	msgs, err := s.srv.mail(user)
	if err != nil {
		s.reply("-ERR [SYS/TEMP] mailbox unavailable")
		return
	}
	s.authed, s.user = true, user
	s.msgs, s.deleted = msgs, map[int]bool{}
	s.reply("+OK logged in")
}

func (s *session) transaction(verb, arg string) bool {
	switch verb {
	case "STAT":
		n, size := 0, 0
		for i, m := range s.msgs {
			if !s.deleted[i] {
				n, size = n+1, size+len(crlf(m))
			}
		}
		s.reply(fmt.Sprintf("+OK %d %d", n, size))
	case "LIST", "UIDL":
		if arg != "" {
			i, ok := s.msg(arg)
			if !ok {
				return true
			}
			s.reply("+OK " + s.listing(verb, i))
			return true
		}
		out := []string{"+OK"}
		for i := range s.msgs {
			if !s.deleted[i] {
				out = append(out, s.listing(verb, i))
			}
		}
		s.lines(append(out, ".")...)
	case "RETR", "TOP":
		num, lines, _ := strings.Cut(arg, " ")
		i, ok := s.msg(num)
		if !ok {
			return true
		}
		body := crlf(s.msgs[i])
		if verb == "TOP" {
			n, err := strconv.Atoi(lines)
			if err != nil || n < 0 {
				return s.err("TOP needs a line count")
			}
			body = top(body, n)
		}
		s.w.WriteString("+OK\r\n")
		for _, l := range strings.SplitAfter(string(body), "\r\n") {
			if strings.HasPrefix(l, ".") {
				s.w.WriteString(".")
			}
			s.w.WriteString(l)
		}
		s.reply(".")
	case "DELE":
		if i, ok := s.msg(arg); ok {
			s.deleted[i] = true
			s.reply("+OK deleted")
		}
	case "RSET":
		s.deleted = map[int]bool{}
		s.reply("+OK")
	default:
		return s.err("unknown command")
	}
	return true
}

func (s *session) listing(verb string, i int) string {
	if verb == "UIDL" {
		sum := sha256.Sum256(s.msgs[i])
		return fmt.Sprintf("%d %s", i+1, hex.EncodeToString(sum[:8]))
	}
	return fmt.Sprintf("%d %d", i+1, len(crlf(s.msgs[i])))
}

func (s *session) msg(arg string) (int, bool) {
	n, err := strconv.Atoi(arg)
	if err != nil || n < 1 || n > len(s.msgs) || s.deleted[n-1] {
		s.err("no such message")
		return 0, false
	}
	return n - 1, true
}

func (s *session) err(msg string) bool {
	s.reply("-ERR " + msg)
	return true
}

func (s *session) reply(line string) { s.lines(line) }

func (s *session) lines(lines ...string) {
	for _, l := range lines {
		s.w.WriteString(l + "\r\n")
	}
	s.c.SetWriteDeadline(time.Now().Add(idle))
	s.w.Flush()
}

// crlf returns m with CRLF line ends and a final CRLF.
func crlf(m []byte) []byte {
	m = bytes.ReplaceAll(m, []byte("\r\n"), []byte("\n"))
	m = bytes.ReplaceAll(m, []byte("\n"), []byte("\r\n"))
	if !bytes.HasSuffix(m, []byte("\r\n")) {
		m = append(m, "\r\n"...)
	}
	return m
}

// top is the header and the first n body lines of m.
func top(m []byte, n int) []byte {
	head, body, found := bytes.Cut(m, []byte("\r\n\r\n"))
	if !found {
		return m
	}
	out := append(append([]byte{}, head...), "\r\n\r\n"...)
	for _, l := range bytes.SplitAfter(body, []byte("\r\n")) {
		if n == 0 || len(l) == 0 {
			break
		}
		out = append(out, l...)
		n--
	}
	return out
}
