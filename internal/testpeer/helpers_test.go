package testpeer

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// testDeadline bounds every raw dialogue so a broken peer fails the test
// instead of hanging it.
const testDeadline = 20 * time.Second

// lineConn is a raw line-oriented client for IMAP and POP3 dialogues.
type lineConn struct {
	t  testing.TB
	c  net.Conn
	br *bufio.Reader
}

func dialLine(t testing.TB, addr string, tlsConf *tls.Config) *lineConn {
	t.Helper()
	d := net.Dialer{Timeout: testDeadline}
	var c net.Conn
	var err error
	if tlsConf != nil {
		c, err = tls.DialWithDialer(&d, "tcp", addr, tlsConf)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return newLineConn(t, c)
}

func newLineConn(t testing.TB, c net.Conn) *lineConn {
	if err := c.SetDeadline(time.Now().Add(testDeadline)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	return &lineConn{t: t, c: c, br: bufio.NewReader(c)}
}

func (l *lineConn) readLine() string {
	l.t.Helper()
	line, err := l.br.ReadString('\n')
	if err != nil {
		l.t.Fatalf("read: %v (partial %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// expect reads one line and requires its prefix.
func (l *lineConn) expect(prefix string) string {
	l.t.Helper()
	line := l.readLine()
	if !strings.HasPrefix(line, prefix) {
		l.t.Fatalf("got %q, want prefix %q", line, prefix)
	}
	return line
}

func (l *lineConn) send(line string) {
	l.t.Helper()
	if _, err := fmt.Fprintf(l.c, "%s\r\n", line); err != nil {
		l.t.Fatalf("write %q: %v", line, err)
	}
}

// upgrade starts TLS on the connection after STARTTLS/STLS was accepted.
func (l *lineConn) upgrade(conf *tls.Config) {
	l.t.Helper()
	if l.br.Buffered() != 0 {
		l.t.Fatalf("%d bytes arrived before the TLS handshake", l.br.Buffered())
	}
	tc := tls.Client(l.c, conf)
	if err := tc.Handshake(); err != nil {
		l.t.Fatalf("TLS handshake: %v", err)
	}
	l.c, l.br = tc, bufio.NewReader(tc)
}

// imapTagged sends "tag line" and returns the tagged answer, skipping
// untagged data.
func (l *lineConn) imapTagged(tag, line string) string {
	l.t.Helper()
	l.send(tag + " " + line)
	for {
		if got := l.readLine(); strings.HasPrefix(got, tag+" ") {
			return got
		}
	}
}
