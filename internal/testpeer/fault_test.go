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
			ctx, cancel := context.WithTimeout(t.Context(), testDeadline)
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
	l.expect("* OK")
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
	l.send("a CAPABILITY")
	// Nothing will ever arrive; the deadline only ends the wait.
	if err := l.c.SetReadDeadline(time.Now().Add(50 * time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n, err := l.c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("read = %d, %v; want nothing until the deadline", n, err)
	}
	return []string{""} // accepted, never read
}

func clientSlow(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	got, reads := make([]byte, 0, 3), 0
	buf := make([]byte, 64)
	for len(got) < 3 {
		n, err := l.c.Read(buf)
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		got, reads = append(got, buf[:n]...), reads+1
	}
	if string(got) != slowGreeting[:len(got)] || reads < 2 {
		t.Fatalf("first bytes %q in %d reads; want a trickle of %q", got, reads, slowGreeting)
	}
	l.send("a LOGOUT")
	l.c.Close()
	return []string{"a LOGOUT\r\n"}
}

func clientCloseMidLogin(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	l.expect("* OK IMAP4rev1 ready")
	l.send("a CAPABILITY")
	l.expect("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
	l.expect("a OK")
	l.send("b LOGIN alice secret")
	if line, err := l.br.ReadString('\n'); !errors.Is(err, io.EOF) {
		t.Fatalf("after LOGIN got %q, %v; want the connection closed", line, err)
	}
	return []string{"a CAPABILITY\r\nb LOGIN alice secret\r\n"}
}

func clientHugeLine(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	buf := make([]byte, len("* OK ")+hugeLineSize)
	if _, err := io.ReadFull(l.br, buf); err != nil {
		t.Fatalf("read the huge line: %v", err)
	}
	if !bytes.HasPrefix(buf, []byte("* OK ")) || bytes.ContainsAny(buf, "\r\n") {
		t.Fatalf("greeting starts %q and must have no line end in %d bytes", buf[:16], len(buf))
	}
	l.send("a CAPABILITY")
	l.c.Close()
	return []string{"a CAPABILITY\r\n"}
}

func clientPreauth(t *testing.T, addr string) []string {
	l := dialLine(t, addr, nil)
	l.expect("* PREAUTH ")
	if got := l.imapTagged("a", "LOGIN alice secret"); got != "a BAD already authenticated" {
		t.Fatalf("LOGIN after PREAUTH = %q", got)
	}
	l.send("b LOGOUT")
	l.expect("* BYE")
	l.expect("b OK")
	return []string{"a LOGIN alice secret\r\nb LOGOUT\r\n"}
}

func clientRefuseLogin(t *testing.T, addr string) []string {
	const no = " NO [AUTHENTICATIONFAILED] no"
	ir := base64.StdEncoding.EncodeToString([]byte("alice\x00master\x00pw"))
	l := dialLine(t, addr, nil)
	l.expect("* OK")
	l.send("a CAPABILITY")
	l.expect("* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR")
	l.expect("a OK")
	if got := l.imapTagged("b", "AUTHENTICATE PLAIN "+ir); got != "b"+no {
		t.Fatalf("AUTHENTICATE with SASL-IR = %q", got)
	}
	l.send("c AUTHENTICATE PLAIN")
	l.expect("+ ")
	l.send(ir)
	l.expect("c" + no)
	l.send("d LOGIN {5}")
	l.expect("+ ")
	l.send("alice {6}")
	l.expect("+ ")
	l.send("secret")
	l.expect("d" + no)
	l.send("e LOGIN alice {6+}\r\nsecret")
	l.expect("e" + no)
	first := "a CAPABILITY\r\nb AUTHENTICATE PLAIN " + ir + "\r\nc AUTHENTICATE PLAIN\r\n" + ir + "\r\n" +
		"d LOGIN {5}\r\nalice {6}\r\nsecret\r\ne LOGIN alice {6+}\r\nsecret\r\n"
	// Every connection is served, not only the first.
	second := dialLine(t, addr, nil)
	second.expect("* OK")
	second.c.Close()
	l.c.Close()
	return []string{first, ""}
}

func clientBadCert(t *testing.T, addr string) []string {
	_, err := tls.Dial("tcp", addr, &tls.Config{ServerName: "127.0.0.1"})
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("TLS dial with system roots: %v, want unknown authority", err)
	}
	l := dialLine(t, addr, &tls.Config{InsecureSkipVerify: true}) // to see what lies behind the cert
	l.expect("* OK IMAP4rev1 ready")
	if got := l.imapTagged("a", "LOGIN alice secret"); !bytes.HasPrefix([]byte(got), []byte("a NO ")) {
		t.Fatalf("LOGIN = %q", got)
	}
	l.c.Close()
	return []string{"", "a LOGIN alice secret\r\n"}
}

func clientBadCertStartTLS(t *testing.T, addr string) []string {
	starttls := func(l *lineConn) {
		l.expect("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED]")
		if got := l.imapTagged("a", "CAPABILITY"); got != "a OK CAPABILITY completed" {
			t.Fatalf("CAPABILITY = %q", got)
		}
		if got := l.imapTagged("b", "STARTTLS"); !strings.HasPrefix(got, "b OK") {
			t.Fatalf("STARTTLS = %q", got)
		}
	}
	l := dialLine(t, addr, nil)
	starttls(l)
	err := tls.Client(l.c, &tls.Config{ServerName: "127.0.0.1"}).Handshake()
	var unknown x509.UnknownAuthorityError
	if !errors.As(err, &unknown) {
		t.Fatalf("TLS handshake with system roots: %v, want unknown authority", err)
	}
	l.c.Close()
	l = dialLine(t, addr, nil)
	starttls(l)
	tc := tls.Client(l.c, &tls.Config{InsecureSkipVerify: true}) // to see what lies behind the cert
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	inner := newLineConn(t, tc)
	if got := inner.imapTagged("c", "LOGIN alice secret"); !strings.HasPrefix(got, "c NO ") {
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
		if err := c.SetReadDeadline(time.Now().Add(testDeadline)); err != nil {
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
