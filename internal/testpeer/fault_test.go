package testpeer

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/linetest"
)

func TestFault(t *testing.T) {
	t.Parallel()
	tests := []struct {
		kind FaultKind
		// client talks to the fault and returns what the fault must have
		// received on each connection.
		client func(t *testing.T, addr string) (want []string)
	}{
		{FaultDown, clientDown},
		{FaultBlackhole, clientBlackhole},
		{FaultSlow, clientSlow},
		{FaultCloseMidLogin, clientCloseMidLogin},
		{FaultHugeLine, clientHugeLine},
		{FaultPreauth, clientPreauth},
		{FaultRefuseLogin, clientRefuseLogin},
		{FaultBadCert, clientBadCert},
		{FaultBadCertStartTLS, clientBadCertStartTLS},
	}
	for _, tt := range tests {
		t.Run(tt.kind.String(), func(t *testing.T) {
			t.Parallel()
			f := StartFault(t, tt.kind)
			want := tt.client(t, f.Addr)
			ctx, cancel := context.WithTimeout(t.Context(), linetest.IOGuard)
			defer cancel()
			if err := f.Wait(ctx, len(want)); err != nil {
				t.Fatal(err)
			}
			got := f.Received()
			if len(got) != len(want) {
				t.Fatalf("%d connections recorded, want %d", len(got), len(want))
			}
			for i := range want {
				if string(got[i]) != want[i] {
					t.Errorf("connection %d received %q, want %q", i, got[i], want[i])
				}
			}
		})
	}
}

func TestFaultHelperReturnsAddress(t *testing.T) {
	t.Parallel()
	addr := Fault(t, FaultRefuseLogin)
	l := dialLine(t, addr, nil)
	l.Expect("* OK")
}

func clientDown(t *testing.T, addr string) []string {
	for range 2 {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
			t.Fatal("connected to a down peer")
		}
		if !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("dial: %v, want connection refused", err)
		}
	}
	return nil
}

func clientBlackhole(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	l.Send("a CAPABILITY")
	// Nothing will ever arrive; the deadline only ends the wait.
	if err := l.Conn().SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.Conn().Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %d, %v; want nothing until the deadline", n, err)
	}
	return []string{""} // accepted, never read
}

func clientSlow(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	got, reads := make([]byte, 0, 3), 0
	buf := make([]byte, 64)
	for len(got) < 3 {
		n, err := l.Conn().Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got, reads = append(got, buf[:n]...), reads+1
	}
	if string(got) != slowGreeting[:len(got)] || reads < 2 {
		t.Fatalf("first bytes %q in %d reads; want a trickle of %q", got, reads, slowGreeting)
	}
	l.Send("a LOGOUT")
	l.Conn().Close()
	return []string{"a LOGOUT\r\n"}
}

func clientCloseMidLogin(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	l.Expect("* OK IMAP4rev1 ready")
	l.Send("a CAPABILITY")
	l.Expect("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
	l.Expect("a OK")
	l.Send("b LOGIN alice secret")
	if line, err := l.LineBefore(time.Now().Add(linetest.IOGuard)); !errors.Is(err, io.EOF) {
		t.Fatalf("after LOGIN got %q, %v; want the connection closed", line, err)
	}
	return []string{"a CAPABILITY\r\nb LOGIN alice secret\r\n"}
}

func clientHugeLine(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	buf := make([]byte, len("* OK ")+hugeLineSize)
	if _, err := io.ReadFull(l, buf); err != nil {
		t.Fatalf("read the huge line: %v", err)
	}
	if !bytes.HasPrefix(buf, []byte("* OK ")) || bytes.ContainsAny(buf, "\r\n") {
		t.Fatalf("greeting starts %q and must have no line end in %d bytes", buf[:16], len(buf))
	}
	l.Send("a CAPABILITY")
	l.Conn().Close()
	return []string{"a CAPABILITY\r\n"}
}

func clientPreauth(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	l.Expect("* PREAUTH ")
	if got := imapTagged(l, "a", "LOGIN alice secret"); got != "a BAD already authenticated" {
		t.Fatalf("LOGIN after PREAUTH = %q", got)
	}
	l.Send("b LOGOUT")
	l.Expect("* BYE")
	l.Expect("b OK")
	return []string{"a LOGIN alice secret\r\nb LOGOUT\r\n"}
}

func clientRefuseLogin(t *testing.T, addr string) []string {
	const no = " NO [AUTHENTICATIONFAILED] no"
	ir := base64.StdEncoding.EncodeToString([]byte("alice\x00master\x00pw"))
	l := dialLine(t, addr, nil)
	l.Expect("* OK")
	l.Send("a CAPABILITY")
	l.Expect("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
	l.Expect("a OK")
	if got := imapTagged(l, "b", "AUTHENTICATE PLAIN "+ir); got != "b"+no {
		t.Fatalf("AUTHENTICATE with SASL-IR = %q", got)
	}
	l.Send("c AUTHENTICATE PLAIN")
	l.Expect("+ ")
	l.Send(ir)
	l.Expect("c" + no)
	l.Send("d LOGIN {5}")
	l.Expect("+ ")
	l.Send("alice {6}")
	l.Expect("+ ")
	l.Send("secret")
	l.Expect("d" + no)
	l.Send("e LOGIN alice {6+}\r\nsecret")
	l.Expect("e" + no)
	first := "a CAPABILITY\r\nb AUTHENTICATE PLAIN " + ir + "\r\nc AUTHENTICATE PLAIN\r\n" + ir + "\r\n" +
		"d LOGIN {5}\r\nalice {6}\r\nsecret\r\ne LOGIN alice {6+}\r\nsecret\r\n"
	// Every connection is served, not only the first.
	second := dialLine(t, addr, nil)
	second.Expect("* OK")
	second.Conn().Close()
	l.Conn().Close()
	return []string{first, ""}
}

func clientBadCert(t *testing.T, addr string) []string {
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1"})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("TLS dial with system roots: %v, want unknown authority", err)
	}
	l := dialLine(t, addr, &tls.Config{InsecureSkipVerify: true}) // to see what lies behind the cert
	l.Expect("* OK IMAP4rev1 ready")
	if got := imapTagged(l, "a", "LOGIN alice secret"); !bytes.HasPrefix([]byte(got), []byte("a NO ")) {
		t.Fatalf("LOGIN = %q", got)
	}
	l.Conn().Close()
	return []string{"", "a LOGIN alice secret\r\n"}
}

func clientBadCertStartTLS(t *testing.T, addr string) []string {
	starttls := func(l *lineConn) {
		l.Expect("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED]")
		if got := imapTagged(l, "a", "CAPABILITY"); got != "a OK CAPABILITY completed" {
			t.Fatalf("CAPABILITY = %q", got)
		}
		if got := imapTagged(l, "b", "STARTTLS"); !strings.HasPrefix(got, "b OK") {
			t.Fatalf("STARTTLS = %q", got)
		}
	}
	l := dialLine(t, addr, nil)
	starttls(l)
	err := tls.Client(l.Conn(), &tls.Config{ServerName: "127.0.0.1"}).Handshake()
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("TLS handshake with system roots: %v, want unknown authority", err)
	}
	l.Conn().Close()
	l = dialLine(t, addr, nil)
	starttls(l)
	tc := tls.Client(l.Conn(), &tls.Config{InsecureSkipVerify: true}) // to see what lies behind the cert
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	inner := linetest.NewClient(t, tc, nil)
	if got := imapTagged(inner, "c", "LOGIN alice secret"); !strings.HasPrefix(got, "c NO ") {
		t.Fatalf("LOGIN inside TLS = %q", got)
	}
	tc.Close()
	return []string{"", "c LOGIN alice secret\r\n"}
}

func TestFaultCleanupCutsConnections(t *testing.T) {
	t.Parallel()
	var clients []net.Conn
	t.Run("peers", func(t *testing.T) {
		for _, kind := range []FaultKind{FaultBlackhole, FaultSlow, FaultRefuseLogin} {
			c, err := net.Dial("tcp", Fault(t, kind))
			if err != nil {
				t.Fatal(err)
			}
			clients = append(clients, c)
		}
	})
	// The subtest's cleanups ran: every fault must have hung up.
	for i, c := range clients {
		defer c.Close()
		if err := c.SetReadDeadline(time.Now().Add(linetest.IOGuard)); err != nil {
			t.Fatal(err)
		}
		if _, err := io.Copy(io.Discard, c); err != nil && !errors.Is(err, syscall.ECONNRESET) {
			t.Errorf("client %d: %v, want the fault to have closed", i, err)
		}
	}
}

func TestLiteralSize(t *testing.T) {
	t.Parallel()
	tests := []struct {
		line     string
		n        int64
		sync, ok bool
	}{
		{"a LOGIN {5}\r\n", 5, true, true},
		{"a LOGIN alice {12+}\r\n", 12, false, true},
		{"a LOGIN alice secret\r\n", 0, false, false},
		{"a LOGIN {x}\r\n", 0, false, false},
		{"a LOGIN {-1}\r\n", 0, false, false},
		{"a LOGIN }\r\n", 0, false, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			n, sync, ok := literalSize([]byte(tt.line))
			if n != tt.n || sync != tt.sync || ok != tt.ok {
				t.Fatalf("literalSize = %d, %v, %v; want %d, %v, %v", n, sync, ok, tt.n, tt.sync, tt.ok)
			}
		})
	}
}

func TestFaultKindString(t *testing.T) {
	t.Parallel()
	var names []string
	for k := FaultDown; k <= FaultBadCertStartTLS; k++ {
		names = append(names, k.String())
	}
	slices.Sort(names)
	if len(slices.Compact(names)) != int(FaultBadCertStartTLS)+1 {
		t.Fatalf("kind names not distinct: %q", names)
	}
	if got := FaultKind(99).String(); got != "FaultKind(99)" {
		t.Fatalf("unknown kind = %q", got)
	}
}
