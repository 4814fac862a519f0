package main

import (
	"bytes"
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
)

// hostileClient is a client name as an IMAP ID or a User-Agent may carry
// it: a right-to-left override, a terminal escape, a forged line.
const hostileClient = "Mail\u202eexe.gpj\x1b[2J\u2028admin logged in\nforged line"

// rawUnsafe names the first raw control, bidirectional control or line
// separator in out, or "".
func rawUnsafe(out string) string {
	for _, bad := range []string{"\u202e", "\x1b", "\u2028", "\u2066"} {
		if strings.Contains(out, bad) {
			return strings.TrimSpace(bad + " ")
		}
	}
	return ""
}

// TestW8_CLINeutralisesText: what clients chose (the client name of a live
// session, audit fields) reaches the command line's tables and its error
// line escaped, one row per record.
func TestW8_CLINeutralisesText(t *testing.T) {
	h := newHarness(t)
	reg := proxy.NewRegistry()
	release, err := reg.Track(proxy.SessionInfo{ID: "s1", Username: "carol", CredentialID: "password", Protocol: authstore.IMAP,
		Remote: netip.MustParseAddrPort("198.51.100.7:50000"), Client: hostileClient, Start: time.Now()}, reg.Mark(), func(string) {})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(release)
	st := h.serveControlWith(reg)
	ctx := authstore.WithActor(context.Background(), authstore.Actor{Name: "test\u202e"})
	if err := st.Record(ctx, authstore.Event{Kind: "login", User: "carol", Result: "denied", Reason: hostileClient, Detail: hostileClient}); err != nil {
		t.Fatal(err)
	}
	st.FlushAudit()
	for _, args := range [][]string{{"sessions", "list"}, {"audit", "tail", "-n", "1"}} {
		out := h.mustRun("", args...)
		if bad := rawUnsafe(out); bad != "" {
			t.Errorf("%v prints %q raw:\n%s", args, bad, out)
		}
		if lines := strings.Count(out, "\n"); lines != 2 {
			t.Errorf("%v prints %d lines, want a header and one row:\n%s", args, lines, out)
		}
		if !strings.Contains(out, `Mail\u202eexe.gpj\x1b[2J\u2028admin logged in\x0aforged line`) {
			t.Errorf("%v does not show the client escaped:\n%s", args, out)
		}
	}
}

// TestW8_LogsNeutraliseText: in either log format a logged name or error
// carrying a bidirectional control, a terminal escape or a line separator
// is written escaped, on one line.
func TestW8_LogsNeutraliseText(t *testing.T) {
	for _, format := range []string{"text", "json"} {
		var buf bytes.Buffer
		log := newLogger(&buf, config.Log{Level: "info", Format: format})
		log.Info("login", "user", hostileClient, "err", errors.New("user "+hostileClient+" refused"))
		out := buf.String()
		if bad := rawUnsafe(out); bad != "" {
			t.Errorf("%s log has %q raw: %s", format, bad, out)
		}
		if strings.Count(out, "\n") != 1 || !strings.Contains(out, `Mail\\u202eexe.gpj`) && !strings.Contains(out, `Mail\u202eexe.gpj`) {
			t.Errorf("%s log: %s", format, out)
		}
	}
}
