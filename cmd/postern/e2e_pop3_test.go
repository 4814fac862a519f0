package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/testpeer"
)

// TestE2E_POP3 logs in through postern's POP3 listeners with an app
// password and reads a delivered message byte for byte. Each login comes
// from its own loopback address, which Dovecot must log as the client's,
// together with postern's session id: postern announced both with XCLIENT.
func TestE2E_POP3(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice")
	e := startE2E(t, peer, e2eOptions{users: []string{"alice"}, totp: []string{"alice"}})
	// Lines starting with a dot travel dot-stuffed (RFC 1939 section 3).
	msg := message("Minutes", "Agreed:", ".", ". a dot and a space", "..two dots", "end")
	peer.Deliver(t, "alice", "INBOX", msg)
	alice := e.account("alice")

	tests := []struct {
		name  string
		src   string
		login func(t *testing.T, src string) *wire
	}{
		{"USER and PASS over pop3s", "127.0.0.2", func(t *testing.T, src string) *wire {
			w := e.dialWire(t, "pop3s", src)
			w.expect("+OK")
			if got := w.pop3Login(alice.name, alice.appPassword); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("PASS: %q", got)
			}
			return w
		}},
		{"AUTH PLAIN over pop3s", "127.0.0.3", func(t *testing.T, src string) *wire {
			w := e.dialWire(t, "pop3s", src)
			w.expect("+OK")
			ir := base64.StdEncoding.EncodeToString([]byte("\x00" + alice.name + "\x00" + alice.appPassword))
			w.send("AUTH PLAIN " + ir)
			w.expect("+OK")
			return w
		}},
		{"STLS on the plain listener", "127.0.0.4", func(t *testing.T, src string) *wire {
			w := e.dialWire(t, "pop3", src)
			w.expect("+OK")
			w.send("STLS")
			w.expect("+OK")
			w.startTLS(e.clientTLS())
			if got := w.pop3Login(alice.name, alice.appPassword); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("PASS: %q", got)
			}
			return w
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := tt.login(t, tt.src)
			w.send("STAT")
			if got, want := w.line(), fmt.Sprintf("+OK 1 %d\r\n", len(msg)); got != want {
				t.Errorf("STAT: %q, want %q", got, want)
			}
			w.send("RETR 1")
			w.expect("+OK")
			if got := w.dotBody(); !bytes.Equal(got, msg) {
				t.Errorf("RETR gave\n%q\nwant\n%q", got, msg)
			}
			w.send("QUIT")
			w.expect("+OK")
			waitForPeerLog(t, peer, "rip="+tt.src+",")
		})
	}
	e.waitSessionIDsInPeerLog(t, len(tests))
}

// TestE2E_Curl reads mail through postern with curl, a client whose IMAP
// and POP3 code postern did not write.
func TestE2E_Curl(t *testing.T) {
	t.Parallel()
	curl := testpeer.RequirePeer(t, "curl")
	peer := startPeer(t, "alice")
	e := startE2E(t, peer, e2eOptions{users: []string{"alice"}, totp: []string{"alice"}})
	msg := message("Read me with curl", "plain text", ".dotted")
	peer.Deliver(t, "alice", "INBOX", msg)
	alice := e.account("alice")

	tests := []struct {
		name, url, secret string
		wantOK            bool
	}{
		{"imaps UID=1", "imaps://" + e.addr("imaps") + "/INBOX;UID=1", alice.appPassword, true},
		{"pop3s RETR 1", "pop3s://" + e.addr("pop3s") + "/1", alice.appPassword, true},
		// Two-step verification is on: the account password opens nothing.
		{"imaps account password", "imaps://" + e.addr("imaps") + "/INBOX;UID=1", alice.password, false},
		{"pop3s account password", "pop3s://" + e.addr("pop3s") + "/1", alice.password, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), e2eIO)
			defer cancel()
			var stderr bytes.Buffer
			cmd := exec.CommandContext(ctx, curl, "--silent", "--show-error", "--cacert", e.certFile,
				"--user", alice.name+":"+tt.secret, tt.url)
			cmd.Stderr = &stderr
			out, err := cmd.Output()
			switch {
			case tt.wantOK && err != nil:
				t.Fatalf("curl: %v\n%s", err, stderr.String())
			case tt.wantOK && !bytes.Equal(out, msg):
				t.Errorf("curl printed\n%q\nwant\n%q", out, msg)
			case !tt.wantOK && err == nil:
				t.Errorf("curl succeeded with the account password and printed %q", out)
			case !tt.wantOK && !strings.Contains(stderr.String(), "denied"):
				t.Errorf("curl failed for another reason than a refused login: %v\n%s", err, stderr.String())
			}
		})
	}
}

// dotBody reads a POP3 multi-line answer after its status line and undoes
// the dot-stuffing (RFC 1939 section 3).
func (w *wire) dotBody() []byte {
	w.t.Helper()
	var b bytes.Buffer
	for {
		s := w.line()
		if s == ".\r\n" {
			return b.Bytes()
		}
		b.WriteString(strings.TrimPrefix(s, "."))
	}
}
