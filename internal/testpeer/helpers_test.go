package testpeer

import (
	"crypto/tls"
	"testing"

	"github.com/postern-dev/postern/internal/linetest"
)

// lineConn is a raw line-oriented client for IMAP and POP3 dialogues.
type lineConn = linetest.Client

// dialLine connects to addr, with TLS at once when tlsConf is set.
func dialLine(t testing.TB, addr string, tlsConf *tls.Config) *lineConn {
	t.Helper()
	return linetest.Dial(t, addr, tlsConf, tlsConf != nil)
}

// imapTagged sends "tag line" and returns the tagged answer, skipping
// untagged data.
func imapTagged(l *lineConn, tag, line string) string {
	lines := l.Transact(tag+" "+line, tag+" ", "")
	return lines[len(lines)-1]
}
