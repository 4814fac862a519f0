package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// TestE2E_IMAPLogin logs in through postern with an app password in every
// way a mail app does, then selects the mailbox Dovecot serves. Each login
// comes from its own loopback address, which Dovecot must log as the
// client's (rip=), together with postern's session id: postern announced
// both with ID (x-originating-ip, x-session-id).
func TestE2E_IMAPLogin(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice")
	e := startE2E(t, peer, e2eOptions{users: []string{"alice"}, totp: []string{"alice"}})
	peer.Deliver(t, "alice", "INBOX", message("Welcome", "hello"))
	alice := e.account("alice")

	tests := []struct {
		name  string
		src   string
		login func(t *testing.T, src string)
	}{
		{"LOGIN", "127.0.0.2", func(t *testing.T, src string) {
			c, _ := e.dialIMAP(t, src, nil)
			if err := c.Login(alice.name, alice.appPassword).Wait(); err != nil {
				t.Fatalf("LOGIN: %v", err)
			}
			selectAndLogout(t, c, 1)
		}},
		{"AUTHENTICATE PLAIN", "127.0.0.3", func(t *testing.T, src string) {
			c, _ := e.dialIMAP(t, src, nil)
			if err := c.Authenticate(sasl.NewPlainClient("", alice.name, alice.appPassword)); err != nil {
				t.Fatalf("AUTHENTICATE PLAIN: %v", err)
			}
			selectAndLogout(t, c, 1)
		}},
		{"AUTHENTICATE LOGIN", "127.0.0.4", func(t *testing.T, src string) {
			w := e.dialWire(t, "imaps", src)
			w.expect("* OK")
			w.send("a AUTHENTICATE LOGIN")
			w.expect("+ ")
			w.send(base64.StdEncoding.EncodeToString([]byte(alice.name)))
			w.expect("+ ")
			w.send(base64.StdEncoding.EncodeToString([]byte(alice.appPassword)))
			w.expect("a OK")
			w.send("b SELECT INBOX")
			if got := w.tagged("b"); !strings.HasPrefix(got, "b OK") {
				t.Fatalf("SELECT: %q", got)
			}
			w.send("c LOGOUT")
			w.expect("* BYE")
			w.expect("c OK")
		}},
		{"LOGIN after STARTTLS", "127.0.0.5", func(t *testing.T, src string) {
			c, err := imapclient.DialStartTLS(e.addr("imap"), &imapclient.Options{TLSConfig: e.clientTLS(), Dialer: dialer(src)})
			if err != nil {
				t.Fatalf("STARTTLS: %v", err)
			}
			t.Cleanup(func() { c.Close() })
			if err := c.Login(alice.name, alice.appPassword).Wait(); err != nil {
				t.Fatalf("LOGIN: %v", err)
			}
			selectAndLogout(t, c, 1)
		}},
		{"commands pipelined after LOGIN", "127.0.0.6", func(t *testing.T, src string) {
			w := e.dialWire(t, "imaps", src)
			w.expect("* OK")
			// One write: postern holds SELECT and LOGOUT until the upstream
			// login succeeded, then relays them to Dovecot (P5).
			w.send(fmt.Sprintf("a LOGIN %s %s", alice.name, alice.appPassword), "b SELECT INBOX", "c LOGOUT")
			for _, tag := range []string{"a", "b", "c"} {
				if got := w.tagged(tag); !strings.HasPrefix(got, tag+" OK") {
					t.Fatalf("%s: %q", tag, got)
				}
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.login(t, tt.src)
			waitForPeerLog(t, peer, "rip="+tt.src+",")
		})
	}

	if got, want := e.metric(t, `postern_logins_total{protocol="imap",result="ok"}`), float64(len(tests)); got != want {
		t.Errorf("logins counted ok: %v, want %v", got, want)
	}
	e.waitSessionIDsInPeerLog(t, len(tests))
}

// selectAndLogout checks that the logged-in session reaches Dovecot's INBOX.
func selectAndLogout(t *testing.T, c *imapclient.Client, wantMessages uint32) {
	t.Helper()
	mbox, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT: %v", err)
	}
	if mbox.NumMessages != wantMessages {
		t.Errorf("INBOX has %d messages, want %d", mbox.NumMessages, wantMessages)
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
}

// TestE2E_IMAPMailbox moves mail through postern: a large message out, a
// new one in, and a delivery announced while the client idles.
func TestE2E_IMAPMailbox(t *testing.T) {
	t.Parallel()
	users := []string{"alice", "bob", "carol"}
	peer := startPeer(t, users...)
	e := startE2E(t, peer, e2eOptions{users: users, totp: []string{"alice"}})

	login := func(t *testing.T, user string, h *imapclient.UnilateralDataHandler) *imapclient.Client {
		t.Helper()
		c, _ := e.dialIMAP(t, "", h)
		if err := c.Login(user, e.account(user).appPassword).Wait(); err != nil {
			t.Fatalf("LOGIN %s: %v", user, err)
		}
		return c
	}

	t.Run("FETCH 5 MB message", func(t *testing.T) {
		big := largeMessage(5 << 20)
		peer.Deliver(t, "bob", "INBOX", big)
		c := login(t, "bob", nil)
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("SELECT: %v", err)
		}
		if got := fetchBody(t, c, imap.SeqSetNum(1)); !bytes.Equal(got, big) {
			t.Errorf("fetched %d bytes, want the delivered %d bytes unchanged", len(got), len(big))
		}
	})

	t.Run("APPEND then FETCH", func(t *testing.T) {
		c := login(t, "alice", nil)
		msg := message("Draft", "written in a mail app", ".a line with a dot")
		app := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := app.Write(msg); err != nil {
			t.Fatalf("APPEND write: %v", err)
		}
		if err := app.Close(); err != nil {
			t.Fatalf("APPEND close: %v", err)
		}
		data, err := app.Wait()
		if err != nil {
			t.Fatalf("APPEND: %v", err)
		}
		if _, err := c.Select("INBOX", nil).Wait(); err != nil {
			t.Fatalf("SELECT: %v", err)
		}
		if got := fetchBody(t, c, imap.UIDSetNum(data.UID)); !bytes.Equal(got, msg) {
			t.Errorf("fetched back %q, want %q", got, msg)
		}
	})

	t.Run("IDLE sees new mail", func(t *testing.T) {
		counts := make(chan uint32, 16)
		c := login(t, "carol", &imapclient.UnilateralDataHandler{Mailbox: func(d *imapclient.UnilateralDataMailbox) {
			if d.NumMessages != nil {
				counts <- *d.NumMessages
			}
		}})
		if mbox, err := c.Select("INBOX", nil).Wait(); err != nil || mbox.NumMessages != 0 {
			t.Fatalf("SELECT: %v, %d messages, want an empty INBOX", err, mbox.NumMessages)
		}
		idle, err := c.Idle()
		if err != nil {
			t.Fatalf("IDLE: %v", err)
		}
		peer.Deliver(t, "carol", "INBOX", message("While you were idle", "news"))
		timer := time.NewTimer(e2eWait)
		defer timer.Stop()
		select {
		case n := <-counts:
			if n != 1 {
				t.Errorf("EXISTS %d, want 1", n)
			}
		case <-timer.C:
			t.Fatal("no EXISTS reached the idling client")
		}
		if err := idle.Close(); err != nil {
			t.Fatalf("DONE: %v", err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatalf("IDLE: %v", err)
		}
		if err := c.Logout().Wait(); err != nil {
			t.Errorf("LOGOUT: %v", err)
		}
	})
}

// fetchBody fetches BODY.PEEK[] of the one message in set.
func fetchBody(t *testing.T, c *imapclient.Client, set imap.NumSet) []byte {
	t.Helper()
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(set, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	if len(msgs) != 1 {
		t.Fatalf("FETCH returned %d messages, want 1", len(msgs))
	}
	return msgs[0].FindBodySection(section)
}

// largeMessage is a text message of about size bytes whose lines differ, so
// a dropped, repeated or reordered chunk cannot go unnoticed.
func largeMessage(size int) []byte {
	var b bytes.Buffer
	b.Write(message("A large attachment"))
	for i := 0; b.Len() < size; i++ {
		fmt.Fprintf(&b, "%08d %s\r\n", i, strings.Repeat(string(rune('a'+i%26)), 66))
	}
	return b.Bytes()
}

// TestE2E_GracefulShutdown stops the gateway under a live IDLE session: the
// client is told BYE, the socket closes, and the gateway leaves no
// goroutine behind. It does not run in parallel, so the goroutine count is
// the gateway's own.
func TestE2E_GracefulShutdown(t *testing.T) {
	peer := startPeer(t, "bob")
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	// A first gateway starts what a process starts once and keeps (the
	// os/signal watcher behind the certificates' SIGHUP reload).
	if err := startE2E(t, peer, e2eOptions{}).shutdown(ctx); err != nil {
		t.Fatalf("shutdown of the first gateway: %v", err)
	}
	baseline := runtime.NumGoroutine()

	e := startE2E(t, peer, e2eOptions{users: []string{"bob"}})
	c, rec := e.dialIMAP(t, "", nil)
	startIdle(t, c, "bob", e.account("bob").appPassword)
	start := time.Now()
	if err := e.shutdown(ctx); err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	waitClosed(t, c, start, e2eWait)
	if got := rec.String(); !strings.Contains(got, "\r\n* BYE ") {
		t.Errorf("no BYE before the close; the client received:\n%s", got)
	}
	c.Close()
	waitGoroutines(t, baseline)
}

// waitGoroutines polls until no more goroutines run than before the test
// started its gateway.
func waitGoroutines(t *testing.T, baseline int) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for runtime.NumGoroutine() > baseline {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines after shutdown, %d before the gateway started:\n%s", runtime.NumGoroutine(), baseline, buf)
		}
		<-tick.C
	}
}
