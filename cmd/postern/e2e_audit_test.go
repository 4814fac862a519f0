package main

import (
	"context"
	"net/http"
	"slices"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// loginEvents lists the sign-in outcomes audited for user, oldest first,
// as "protocol result reason".
func loginEvents(t *testing.T, st *authstore.Store, user string) []string {
	t.Helper()
	st.FlushAudit()
	evs, err := st.AuditTail(context.Background(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, ev := range evs {
		if ev.Kind == "login" && ev.User == user && ev.Protocol != authstore.Web {
			out = append(out, strings.Join([]string{string(ev.Protocol), ev.Result, ev.Reason}, " "))
		}
	}
	return out
}

// TestW5_UpstreamDownIsNoSignIn: with Dovecot switched off, a right app
// password over IMAP and POP3 is answered "try later", and the audit log
// records that outcome, not a sign-in; once Dovecot is back, the next
// login is one.
func TestW5_UpstreamDownIsNoSignIn(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "carol")
	imapUp, pop3Up := newSwitchedUpstream(t, peer.IMAPAddr), newSwitchedUpstream(t, peer.POP3Addr)
	e := startE2E(t, peer, e2eOptions{users: []string{"carol"}, imapUpstream: imapUp.addr, pop3Upstream: pop3Up.addr})
	carol := e.account("carol")
	imapUp.off()
	pop3Up.off()
	if got := e.imapTry(t, "", carol.name, carol.appPassword); got != imapTempErr {
		t.Fatalf("IMAP with the upstream down: %q", got)
	}
	if got := e.pop3Try(t, "", carol.name, carol.appPassword); got != pop3TempErr {
		t.Fatalf("POP3 with the upstream down: %q", got)
	}
	imapUp.on()
	pop3Up.on()
	if got := e.imapTry(t, "", carol.name, carol.appPassword); !strings.HasPrefix(got, "a OK") {
		t.Fatalf("IMAP once the upstream is back: %q", got)
	}
	if got := e.pop3Try(t, "", carol.name, carol.appPassword); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("POP3 once the upstream is back: %q", got)
	}
	want := []string{"imap unavailable upstream_error", "pop3 unavailable upstream_error", "imap ok app_password", "pop3 ok app_password"}
	if got := loginEvents(t, e.g.store, "carol"); !slices.Equal(got, want) {
		t.Errorf("audited sign-ins:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// TestW5_DAVUpstreamDownIsNoSignIn: a right password in front of a Radicale
// that is down gets 503, is audited as such, and the account page says the
// app failed to sign in; on the same connection, the first request that
// gets through once Radicale is back is the sign-in.
func TestW5_DAVUpstreamDownIsNoSignIn(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{switched: true})
	pw := e.user(t, "dora", false)
	e.sw.off()
	if code, _, _ := e.do(t, "PROPFIND", "/dora/", "dora", pw, map[string]string{"Depth": "0"}, ""); code != http.StatusServiceUnavailable {
		t.Fatalf("upstream down: %d, want 503", code)
	}
	e.sw.on()
	if code, _, _ := e.do(t, "PROPFIND", "/dora/", "dora", pw, map[string]string{"Depth": "0"}, ""); code != http.StatusMultiStatus {
		t.Fatalf("upstream back: %d, want 207", code)
	}
	want := []string{"dav unavailable upstream_error", "dav ok account_password"}
	if got := loginEvents(t, e.g.store, "dora"); !slices.Equal(got, want) {
		t.Errorf("audited sign-ins:\n  %s\nwant\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	code, page := e.signIn(t, "dora", pw).do(http.MethodGet, "/account", "", "")
	if code != http.StatusOK {
		t.Fatalf("GET /account: %d", code)
	}
	if n := strings.Count(page, "An app failed to sign in from 127.0.0.1"); n != 1 {
		t.Errorf("the account page tells of %d failed sign-ins, want 1:\n%s", n, page)
	}
	if n := strings.Count(page, "An app signed in from 127.0.0.1"); n != 1 {
		t.Errorf("the account page tells of %d sign-ins, want 1:\n%s", n, page)
	}
}
