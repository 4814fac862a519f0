package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
)

// TestKickSaysWhy: a session ended by a change is told what happened, in
// words its owner understands, over IMAP (BYE with an RFC 5530 code) and
// POP3 (-ERR with an RFC 3206 code), with the account page where the
// owner can do something about it; real clients' connections through a
// whole gateway in front of Dovecot.
func TestKickSaysWhy(t *testing.T) {
	t.Parallel()
	const page = "https://mail.example.org/account"
	users := []string{"k-revoked", "k-passwd", "k-all", "k-disabled", "k-deleted", "k-reset", "k-mfa", "k-admin", "k-policy", "k-shutdown"}
	peer := startPeer(t, users...)
	e := startE2E(t, peer, e2eOptions{users: users})
	st, ctx := e.g.store, e2eCtx()

	tests := []struct {
		user     string
		password bool // the sessions log in with the account password, not the app password
		change   func(a *e2eAccount) error
		imap     string
		pop3     string
	}{
		{"k-revoked", false, func(a *e2eAccount) error { return st.RevokeAppPassword(ctx, a.name, a.appPassID) },
			"* BYE [EXPIRED] this app password was revoked; sign in at " + page + " to make a new one",
			"-ERR [AUTH] this app password was revoked; sign in at " + page + " to make a new one"},
		{"k-passwd", true, func(a *e2eAccount) error { return st.SetPassword(ctx, a.name, "a new account password", false) },
			"* BYE [EXPIRED] the account password was changed",
			"-ERR [AUTH] the account password was changed"},
		{"k-all", false, func(a *e2eAccount) error { return st.SetPassword(ctx, a.name, "a new account password", true) },
			"* BYE [EXPIRED] the account password was changed and every app password revoked; sign in at " + page + " to make a new app password",
			"-ERR [AUTH] the account password was changed and every app password revoked; sign in at " + page + " to make a new app password"},
		{"k-disabled", false, func(a *e2eAccount) error { return st.SetDisabled(ctx, a.name, true) },
			"* BYE [CONTACTADMIN] this account was disabled",
			"-ERR [SYS/PERM] this account was disabled"},
		{"k-deleted", false, func(a *e2eAccount) error { return st.DeleteUser(ctx, a.name) },
			"* BYE [CONTACTADMIN] this account was deleted",
			"-ERR [SYS/PERM] this account was deleted"},
		{"k-reset", false, func(a *e2eAccount) error { return st.ResetMFA(ctx, a.name) },
			"* BYE two-step verification was reset; log in again",
			"-ERR [SYS/TEMP] two-step verification was reset; log in again"},
		{"k-mfa", true, func(a *e2eAccount) error { return enableTOTP(ctx, st, a.name) },
			"* BYE [EXPIRED] two-step verification was turned on and mail apps need an app password; sign in at " + page + " to make one",
			"-ERR [AUTH] two-step verification was turned on and mail apps need an app password; sign in at " + page + " to make one"},
		{"k-admin", false, func(a *e2eAccount) error {
			ctl, err := dialControl(ctx, e.addr("control"))
			if err == nil {
				_, err = ctl.EndUserSessions(ctx, a.name)
			}
			return err
		},
			"* BYE session ended by an administrator",
			"-ERR [SYS/TEMP] session ended by an administrator"},
		// The organisation's policy ends every account-password session;
		// the cases before it have ended theirs.
		{"k-policy", true, func(*e2eAccount) error { return st.SetPolicy(ctx, authstore.Policy{MFARequired: true}) },
			"* BYE [EXPIRED] two-step verification is now required and mail apps need an app password; sign in at " + page + " to make one",
			"-ERR [AUTH] two-step verification is now required and mail apps need an app password; sign in at " + page + " to make one"},
		// The mail servers shut down as serve's shutdown begins; the store
		// stays open for the test's own checks at its end.
		{"k-shutdown", false, func(*e2eAccount) error {
			for _, srv := range e.g.servers {
				go srv.Shutdown(context.Background())
			}
			return nil
		},
			"* BYE [UNAVAILABLE] server shutting down",
			"-ERR [SYS/TEMP] server shutting down"},
	}
	for _, tt := range tests {
		t.Run(tt.user, func(t *testing.T) {
			a := e.account(tt.user)
			secret := a.appPassword
			if tt.password {
				secret = a.password
			}
			imap := e.dialWire(t, "imaps", "")
			imap.expect("* OK")
			if got := imap.imapLogin("a", a.name, secret); !strings.HasPrefix(got, "a OK") {
				t.Fatalf("IMAP login: %q", got)
			}
			pop := e.dialWire(t, "pop3s", "")
			pop.expect("+OK")
			if got := pop.pop3Login(a.name, secret); !strings.HasPrefix(got, "+OK") {
				t.Fatalf("POP3 login: %q", got)
			}
			start := time.Now()
			if err := tt.change(a); err != nil {
				t.Fatalf("change: %v", err)
			}
			if got := imap.closedWithin(start, e2eWait); got != tt.imap+"\r\n" {
				t.Errorf("IMAP client told %q, want %q", got, tt.imap)
			}
			if got := pop.closedWithin(start, e2eWait); got != tt.pop3+"\r\n" {
				t.Errorf("POP3 client told %q, want %q", got, tt.pop3)
			}
		})
	}
}

// enableTOTP turns two-step verification on for user, as the account page
// does: begin, then confirm with a code.
func enableTOTP(ctx context.Context, st *authstore.Store, user string) error {
	enr, err := st.BeginTOTP(ctx, user)
	if err != nil {
		return err
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		return err
	}
	_, err = st.ConfirmTOTP(ctx, user, code)
	return err
}
