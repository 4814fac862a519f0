// Package load generates IMAP and SMTP load for the benchmarks in bench/:
// login and logout loops, message fetches and idle sessions against any
// IMAP endpoint (a server or a proxy in front of one), and submission
// sessions against any SMTP one (smtp.go). It speaks just enough of each
// protocol for that, on raw sockets, so that the client's own cost stays
// small and the same for every target.
package load

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// maxLine bounds a response line; the largest ones (CAPABILITY) are far
// smaller.
const maxLine = 64 << 10

// ErrResponse means the server answered a command with something other
// than OK.
var ErrResponse = errors.New("imap command failed")

// Target is an IMAP endpoint.
type Target struct {
	Addr string
	// TLS makes the connection implicit TLS (993-style); nil is plaintext.
	TLS *tls.Config
	// Sources, when set, are local addresses the connections rotate over,
	// so that more connections than one address has ephemeral ports can
	// stay open (127.0.0.2, 127.0.0.3, … all reach loopback).
	Sources []net.IP
}

// Conn is one client connection.
type Conn struct {
	c    net.Conn
	raw  net.Conn // the TCP connection under c
	r    *bufio.Reader
	w    *bufio.Writer
	tags int
}

// Dial connects, completes TLS if the target asks for it, and reads the
// greeting. n picks the source address when the target has several.
func Dial(ctx context.Context, t Target, n int) (*Conn, error) {
	conn, err := dialConn(ctx, t, n)
	if err != nil {
		return nil, err
	}
	line, err := conn.greeting(ctx, conn.raw)
	if err != nil {
		conn.raw.Close()
		return nil, fmt.Errorf("greeting from %s: %w", t.Addr, err)
	}
	if !strings.HasPrefix(line, "* OK") {
		conn.raw.Close()
		return nil, fmt.Errorf("greeting from %s: %w: %.80q", t.Addr, ErrResponse, line)
	}
	return conn, nil
}

// dialConn connects from the source n picks and completes TLS if the
// target asks for it.
func dialConn(ctx context.Context, t Target, n int) (*Conn, error) {
	d := net.Dialer{}
	if len(t.Sources) > 0 {
		d.LocalAddr = &net.TCPAddr{IP: t.Sources[n%len(t.Sources)]}
		d.Control = bindNoPort
	}
	raw, err := d.DialContext(ctx, "tcp", t.Addr)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", t.Addr, err)
	}
	c := raw
	if t.TLS != nil {
		tc := tls.Client(raw, t.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			raw.Close()
			return nil, fmt.Errorf("tls handshake with %s: %w", t.Addr, err)
		}
		c = tc
	}
	return &Conn{c: c, raw: raw, r: bufio.NewReaderSize(c, 4096), w: bufio.NewWriterSize(c, 1024)}, nil
}

// greeting reads the first line under ctx: its deadline bounds the read
// and its cancellation wakes it.
func (c *Conn) greeting(ctx context.Context, raw net.Conn) (string, error) {
	if d, ok := ctx.Deadline(); ok {
		raw.SetDeadline(d)
	}
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	line, err := c.readLine()
	if !stop() {
		return "", ctx.Err()
	}
	raw.SetDeadline(time.Time{})
	return line, err
}

// bindNoPort lets the kernel choose the source port at connect time, as it
// does without a local address: a port is then only busy per destination,
// and ports in TIME_WAIT can be reused on loopback.
func bindNoPort(network, _ string, rc syscall.RawConn) error {
	if network != "tcp4" {
		return nil
	}
	var serr error
	err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, ipBindAddressNoPort, 1)
	})
	if err != nil {
		return err
	}
	return serr
}

// ipBindAddressNoPort is IP_BIND_ADDRESS_NO_PORT from linux/in.h, which the
// syscall package does not name.
const ipBindAddressNoPort = 24

// Close closes the connection without a LOGOUT.
func (c *Conn) Close() error { return c.c.Close() }

// SetDeadline bounds every later read and write.
func (c *Conn) SetDeadline(t time.Time) error { return c.c.SetDeadline(t) }

// Login sends LOGIN with quoted arguments and waits for its OK.
func (c *Conn) Login(user, password string) error {
	return c.Command("LOGIN " + quote(user) + " " + quote(password))
}

// Logout sends LOGOUT and waits for its OK.
func (c *Conn) Logout() error { return c.Command("LOGOUT") }

// Command sends one command and reads responses, skipping untagged ones
// and their literals, until the tagged one; anything but OK is ErrResponse.
func (c *Conn) Command(cmd string) error {
	tag, err := c.send(cmd)
	if err != nil {
		return err
	}
	_, err = c.untilTagged(tag, io.Discard)
	return err
}

// FetchBody fetches one message's full text (BODY.PEEK[]) and returns the
// size of the literal it arrived in, which it reads and drops.
func (c *Conn) FetchBody(seq int) (int64, error) {
	tag, err := c.send("FETCH " + strconv.Itoa(seq) + " BODY.PEEK[]")
	if err != nil {
		return 0, err
	}
	return c.untilTagged(tag, io.Discard)
}

// Idle starts IDLE and waits for the server's continuation: from then on
// the session is idle until Done.
func (c *Conn) Idle() error {
	tag, err := c.send("IDLE")
	if err != nil {
		return err
	}
	for {
		line, err := c.readLine()
		if err != nil {
			return fmt.Errorf("idle: %w", err)
		}
		switch {
		case strings.HasPrefix(line, "+"):
			return nil
		case strings.HasPrefix(line, tag+" "):
			return fmt.Errorf("idle: %w: %.80q", ErrResponse, line)
		}
	}
}

func (c *Conn) send(cmd string) (string, error) {
	c.tags++
	tag := "b" + strconv.Itoa(c.tags)
	c.w.WriteString(tag)
	c.w.WriteByte(' ')
	c.w.WriteString(cmd)
	c.w.WriteString("\r\n")
	if err := c.w.Flush(); err != nil {
		return "", fmt.Errorf("send: %w", err)
	}
	return tag, nil
}

// untilTagged reads up to and including the response tagged tag. Literal
// bytes go to sink; their total is returned.
func (c *Conn) untilTagged(tag string, sink io.Writer) (int64, error) {
	var literals int64
	for {
		line, err := c.readLine()
		if err != nil {
			return literals, err
		}
		for {
			n, ok := literalSize(line)
			if !ok {
				break
			}
			got, err := io.CopyN(sink, c.r, n)
			literals += got
			if err != nil {
				return literals, fmt.Errorf("read literal: %w", err)
			}
			// The response goes on after the literal.
			if line, err = c.readLine(); err != nil {
				return literals, err
			}
		}
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				return literals, fmt.Errorf("%w: %.80q", ErrResponse, line)
			}
			return literals, nil
		}
	}
}

// readLine returns one line without its CRLF.
func (c *Conn) readLine() (string, error) {
	var b []byte
	for {
		frag, err := c.r.ReadSlice('\n')
		b = append(b, frag...)
		if err == nil {
			break
		}
		if !errors.Is(err, bufio.ErrBufferFull) {
			return "", fmt.Errorf("read: %w", err)
		}
		if len(b) > maxLine {
			return "", fmt.Errorf("read: line longer than %d bytes", maxLine)
		}
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// literalSize reports the size of the literal a line announces at its end
// ("{123}" or the non-synchronising "{123+}").
func literalSize(line string) (int64, bool) {
	if !strings.HasSuffix(line, "}") {
		return 0, false
	}
	open := strings.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	digits := strings.TrimSuffix(line[open+1:len(line)-1], "+")
	n, err := strconv.ParseInt(digits, 10, 64)
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// quote makes an IMAP quoted string.
func quote(s string) string {
	r := strings.NewReplacer(`\`, `\\`, `"`, `\"`)
	return `"` + r.Replace(s) + `"`
}

// Read reads what the server sends outside a command (IDLE updates, BYE).
func (c *Conn) Read(p []byte) (int, error) { return c.r.Read(p) }

// AwaitEnd reads until the server ends the connection (what it sends
// meanwhile, such as a BYE, is dropped) or the deadline passes, and
// returns when the end arrived.
func (c *Conn) AwaitEnd(deadline time.Time) (time.Time, error) {
	c.c.SetReadDeadline(deadline)
	_, err := io.Copy(io.Discard, c.r)
	end := time.Now()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return end, fmt.Errorf("connection still open at the deadline: %w", err)
	}
	return end, nil // EOF, or a reset: the server closed it either way
}
