package imap

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// FuzzPreAuth feeds arbitrary client bytes to a front-end. Properties: no
// panic, the dialogue ends when the input does, every login it returns is
// sendable, and allocation stays proportional to the input, whatever sizes
// literals claim.
func FuzzPreAuth(f *testing.F) {
	seeds := []string{
		"a CAPABILITY\r\nb NOOP\r\nc LOGOUT\r\n",
		"a LOGIN alice secret\r\n",
		"a LOGIN \"al\\\"ice\" {6}\r\nsecret\r\n",
		"a LOGIN {5+}\r\nalice {4294967296}\r\n",
		"a AUTHENTICATE PLAIN " + b64("\x00alice\x00secret") + "\r\n",
		"a AUTHENTICATE PLAIN\r\n" + b64("alice\x00alice\x00secret") + "\r\n",
		"a AUTHENTICATE LOGIN\r\n" + b64("alice") + "\r\n*\r\n",
		"a ID (\"name\" \"x\" \"version\" NIL)\r\nb STARTTLS\r\n",
		"a NOOP " + strings.Repeat("(", 4000),
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
	}
	for _, s := range seeds {
		f.Add(false, []byte(s))
		f.Add(true, []byte(s))
	}
	f.Fuzz(func(t *testing.T, secure bool, input []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		runPreAuth(t, secure, input)
		runtime.ReadMemStats(&after)
		if n, limit := after.TotalAlloc-before.TotalAlloc, uint64(512<<10+256*len(input)); n > limit {
			t.Fatalf("%d bytes of input allocated %d bytes, limit %d", len(input), n, limit)
		}
	})
}

// runPreAuth plays input to a front-end, rejecting every login, until the
// front-end ends the dialogue.
func runPreAuth(t *testing.T, secure bool, input []byte) {
	p := New(Config{Adapter: proxy.Adapter{AccountURL: testAccountURL}})
	fe := p.NewFrontend(proxy.NewConn(&scriptConn{r: bytes.NewReader(input)}), nil).(*frontend)
	// The script is never TLS; the flag stands for a finished handshake so
	// the credential paths are explored too.
	fe.secure = secure
	if err := fe.Greet(); err != nil {
		t.Fatal(err)
	}
	for {
		l, err := fe.ReadLogin(context.Background())
		if err != nil {
			return
		}
		if checkCredential(l.Username, l.Secret) != nil {
			t.Fatalf("login %q / %q should have been refused", l.Username, l.Secret)
		}
		if !secure {
			t.Fatal("a login came out of a cleartext connection")
		}
		if err := fe.Reject(l, authstore.ErrUnauthorized); err != nil {
			t.Fatal(err)
		}
	}
}

// scriptConn is a connection that reads a fixed input and discards what
// is written to it.
type scriptConn struct{ r io.Reader }

func (c *scriptConn) Read(b []byte) (int, error)       { return c.r.Read(b) }
func (c *scriptConn) Write(b []byte) (int, error)      { return len(b), nil }
func (c *scriptConn) Close() error                     { return nil }
func (c *scriptConn) LocalAddr() net.Addr              { return &net.TCPAddr{} }
func (c *scriptConn) RemoteAddr() net.Addr             { return &net.TCPAddr{} }
func (c *scriptConn) SetDeadline(time.Time) error      { return nil }
func (c *scriptConn) SetReadDeadline(time.Time) error  { return nil }
func (c *scriptConn) SetWriteDeadline(time.Time) error { return nil }

// FuzzSASL decodes arbitrary AUTHENTICATE responses. Properties: no panic;
// whatever PLAIN accepts is a clean credential whose message re-encodes to
// exactly the input.
func FuzzSASL(f *testing.F) {
	for _, s := range []string{
		b64("\x00alice\x00secret"), b64("alice\x00alice\x00secret"), b64("bob\x00alice\x00secret"),
		b64("alice\x00secret"), b64("\x00al\r\nice\x00secret"), "=", "*", "AGFsaWNlAHNlY3JldA", "!!!",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, line []byte) {
		msg, err := decodeInitialResponse(line)
		if err != nil {
			if !errors.Is(err, errSyntax) && !errors.Is(err, errCancelled) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		user, secret, err := decodePlain(msg)
		if err != nil {
			if !errors.Is(err, authstore.ErrUnauthorized) {
				t.Fatalf("unexpected error %v", err)
			}
			return
		}
		if checkCredential(user, secret) != nil {
			t.Fatalf("accepted unclean credential %q / %q", user, secret)
		}
		bare := "\x00" + user + "\x00" + secret
		if string(msg) != bare && string(msg) != user+bare {
			t.Fatalf("message %q decoded to %q / %q", msg, user, secret)
		}
	})
}

// FuzzEncoderRoundTrip encodes arbitrary LOGIN credentials for the
// upstream. Properties: CR, LF and NUL are refused; anything else decodes,
// with a parser independent of the encoder, to exactly the input as one
// command and nothing more.
func FuzzEncoderRoundTrip(f *testing.F) {
	for _, s := range [][2]string{
		{"alice", "secret"}, {`a"b\c`, "{5}\r\n"}, {"jürgen", "pässwd"}, {"alice\r\nx DELETE INBOX", "x"},
		{"", ""}, {"a b", ")("}, {"nul\x00", "x"}, {"é\x80", "\xff"},
	} {
		for mode := range byte(3) {
			f.Add(mode, s[0], s[1])
		}
	}
	f.Fuzz(func(t *testing.T, mode byte, user, password string) {
		caps := [][]string{nil, {"LITERAL-"}, {"LITERAL+"}}[mode%3]
		if mode%3 == 2 && (len(user) > maxNonSyncLiteral || len(password) > maxNonSyncLiteral) {
			t.Skip("the front-end's decoder takes no larger non-synchronising literal")
		}
		chunks, err := loginChunks(caps, user, password)
		unclean := strings.ContainsAny(user, "\r\n\x00") || strings.ContainsAny(password, "\r\n\x00")
		if unclean != errors.Is(err, errUnencodable) {
			t.Fatalf("%q / %q: err %v", user, password, err)
		}
		if err != nil {
			return
		}
		assertOneLogin(t, chunks, user, password)
		var all bytes.Buffer
		for _, c := range chunks {
			all.Write(c.data)
		}
		if !bytes.HasSuffix(all.Bytes(), []byte("\r\n")) {
			t.Fatalf("command %q does not end in CRLF", all.Bytes())
		}
	})
}
