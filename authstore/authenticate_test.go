package authstore

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// decisionFixture holds the users of the decision table.
type decisionFixture struct {
	e                                       *testEnv
	full, imapOnly, expired, valid, revoked string
	mfaApp, offApp, bobApp                  string
	ids                                     map[string]string // secret → app password id
}

func newDecisionFixture(t *testing.T, mods ...func(*Options)) *decisionFixture {
	t.Helper()
	e := newTestStore(t, mods...)
	f := &decisionFixture{e: e, ids: map[string]string{}}
	for _, n := range []string{"alice", "mfa", "off", "bob"} {
		e.addUser(t, n)
	}
	if _, err := e.s.CreateUser(bg, NewUser{Name: "nopw"}); err != nil {
		t.Fatal(err)
	}
	mk := func(user string, in NewAppPassword) string {
		ap, secret, err := e.s.CreateAppPassword(bg, user, in)
		if err != nil {
			t.Fatal(err)
		}
		f.ids[secret] = ap.ID
		return secret
	}
	f.full = mk("alice", NewAppPassword{Name: "all"})
	f.imapOnly = mk("alice", NewAppPassword{Name: "mail", Scopes: []Protocol{IMAP}})
	f.expired = mk("alice", NewAppPassword{Name: "short", Expires: epoch.Add(time.Hour)})
	f.valid = mk("alice", NewAppPassword{Name: "long", Expires: epoch.Add(48 * time.Hour)})
	f.revoked = mk("alice", NewAppPassword{Name: "old"})
	if err := e.s.RevokeAppPassword(bg, "alice", f.ids[f.revoked]); err != nil {
		t.Fatal(err)
	}
	f.mfaApp = mk("mfa", NewAppPassword{Name: "phone"})
	f.offApp = mk("off", NewAppPassword{Name: "phone"})
	f.bobApp = mk("bob", NewAppPassword{Name: "phone"})
	e.enableTOTP(t, "mfa")
	if err := e.s.SetDisabled(bg, "off", true); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour) // past f.expired, before f.valid
	return f
}

func TestAuthenticateDecision(t *testing.T) {
	f := newDecisionFixture(t)
	e := f.e
	shout := func(s string) string { return strings.ToUpper(strings.ReplaceAll(s, " ", "-")) }
	tests := []struct {
		name       string
		proto      Protocol
		user       string
		secret     string
		wantOK     bool
		wantApp    string // secret whose id the grant must carry; "" = account password
		wantReason string
	}{
		{"app password", IMAP, "alice", f.full, true, f.full, "app_password"},
		{"app password typed loosely", CardDAV, "Alice", shout(f.full), true, f.full, "app_password"},
		{"app password without spaces", POP3, "alice", strings.ReplaceAll(f.full, " ", ""), true, f.full, "app_password"},
		{"app password in scope", IMAP, "alice", f.imapOnly, true, f.imapOnly, "app_password"},
		{"app password out of scope", POP3, "alice", f.imapOnly, false, "", "app_password_scope"},
		{"app password for web", Web, "alice", f.full, false, "", "app_password_scope"},
		{"app password not yet expired", CalDAV, "alice", f.valid, true, f.valid, "app_password"},
		{"app password expired", IMAP, "alice", f.expired, false, "", "app_password_expired"},
		{"app password revoked", IMAP, "alice", f.revoked, false, "", "wrong_secret"},
		{"app password wrong", IMAP, "alice", "abcd efgh ijkl mnop qrst uvwx", false, "", "wrong_secret"},
		{"another user's app password", IMAP, "alice", f.bobApp, false, "", "wrong_secret"},
		{"app password of a user with MFA", IMAP, "mfa", f.mfaApp, true, f.mfaApp, "app_password"},
		{"app password of a disabled user", IMAP, "off", f.offApp, false, "", "disabled"},
		{"account password", IMAP, "alice", goodPassword, true, "", "account_password"},
		{"account password, web", Web, "alice", goodPassword, true, "", "account_password"},
		{"account password wrong", IMAP, "alice", "wrong password", false, "", "wrong_secret"},
		{"account password, user with MFA", IMAP, "mfa", goodPassword, false, "", "account_password_needs_app_password"},
		{"account password, user with MFA, DAV", CalDAV, "mfa", goodPassword, false, "", "account_password_needs_app_password"},
		{"account password, user with MFA, web", Web, "mfa", goodPassword, true, "", "account_password"},
		{"wrong password, user with MFA", IMAP, "mfa", "wrong password", false, "", "wrong_secret"},
		{"account password, disabled user", IMAP, "off", goodPassword, false, "", "disabled"},
		{"user without a password", IMAP, "nopw", goodPassword, false, "", "unknown_user"},
		{"unknown user", IMAP, "nobody", goodPassword, false, "", "unknown_user"},
		{"invalid username", IMAP, "ali\rce", goodPassword, false, "", "invalid_username"},
		{"empty secret", IMAP, "alice", "", false, "", "wrong_secret"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			src := fmt.Sprintf("198.51.100.%d", i+1)
			g, err := e.login(tc.user, tc.secret, tc.proto, src)
			if tc.wantOK != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.wantOK)
			}
			if !tc.wantOK && (!errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled)) {
				t.Fatalf("err = %v, want plain ErrUnauthorized", err)
			}
			if tc.wantOK {
				checkGrant(t, e, g, tc.user, f.ids[tc.wantApp])
			}
			e.s.FlushAudit()
			ev := lastEvent(t, e)
			wantResult := map[bool]string{true: "ok", false: "denied"}[tc.wantOK]
			if ev.Kind != "login" || ev.Result != wantResult || ev.Reason != tc.wantReason ||
				ev.Protocol != tc.proto || ev.Source != src {
				t.Fatalf("audit event %+v, want %s/%s", ev, wantResult, tc.wantReason)
			}
		})
	}
}

func checkGrant(t *testing.T, e *testEnv, g Grant, user, appID string) {
	t.Helper()
	u, err := e.s.GetUser(bg, user)
	if err != nil {
		t.Fatal(err)
	}
	if g.UserID != u.ID || g.Username != u.Name || g.AppPassID != appID || !g.GraceUntil.IsZero() {
		t.Fatalf("grant %+v, want user %s app %q", g, u.Name, appID)
	}
	wantCred := appID
	if appID == "" {
		wantCred = "password"
		if !slices.Equal(g.Scopes, AllScopes) {
			t.Fatalf("account password scopes %v", g.Scopes)
		}
	}
	if g.CredentialID() != wantCred {
		t.Fatalf("CredentialID = %q, want %q", g.CredentialID(), wantCred)
	}
}

func lastEvent(t *testing.T, e *testEnv) Event {
	t.Helper()
	evs, err := e.s.AuditTail(bg, 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit tail: %v, %v", evs, err)
	}
	return evs[0]
}

func TestAuthenticatePolicy(t *testing.T) {
	grace := epoch.Add(24 * time.Hour)
	tests := []struct {
		name      string
		policy    Policy
		mfa       bool
		proto     Protocol
		wantOK    bool
		wantGrace time.Time
	}{
		{"not required", Policy{}, false, IMAP, true, time.Time{}},
		{"required", Policy{MFARequired: true}, false, IMAP, false, time.Time{}},
		{"required, DAV", Policy{MFARequired: true}, false, CardDAV, false, time.Time{}},
		{"required, web sign-in to enrol", Policy{MFARequired: true}, false, Web, true, time.Time{}},
		{"required, grace over", Policy{MFARequired: true, GraceUntil: epoch.Add(-time.Minute)}, false, IMAP, false, time.Time{}},
		{"in grace", Policy{MFARequired: true, GraceUntil: grace}, false, IMAP, true, grace},
		{"in grace, web", Policy{MFARequired: true, GraceUntil: grace}, false, Web, true, grace},
		{"in grace but enrolled", Policy{MFARequired: true, GraceUntil: grace}, true, POP3, false, time.Time{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.clock.Set(epoch.Add(-time.Hour)) // enrol before the grace deadline moves closer
			e.addUser(t, "alice")
			if tc.mfa {
				e.enableTOTP(t, "alice")
			}
			if err := e.s.SetPolicy(bg, tc.policy); err != nil {
				t.Fatal(err)
			}
			e.clock.Set(epoch)
			g, err := e.login("alice", goodPassword, tc.proto, "192.0.2.1")
			if tc.wantOK != (err == nil) {
				t.Fatalf("err = %v, want ok=%v", err, tc.wantOK)
			}
			if err != nil && !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v", err)
			}
			if !g.GraceUntil.Equal(tc.wantGrace) {
				t.Fatalf("GraceUntil = %v, want %v", g.GraceUntil, tc.wantGrace)
			}
		})
	}
}

var errFault = errors.New("disk on fire")

// faultyKV fails every transaction while fail is set, as a broken disk
// or a lost replica would.
type faultyKV struct {
	kv
	fail atomic.Bool
}

func (f *faultyKV) View(fn func(kvTx) error) error {
	if f.fail.Load() {
		return errFault
	}
	return f.kv.View(fn)
}

func (f *faultyKV) Update(fn func(kvTx) error) error {
	if f.fail.Load() {
		return errFault
	}
	return f.kv.Update(fn)
}

func TestAuthenticateUnavailableKeepsBudget(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{UserBudget: 3, PairBudget: 100, SourceFree: 100}))
	e.addUser(t, "alice")
	secret, _ := e.enableTOTP(t, "alice")
	faulty := &faultyKV{kv: e.s.db}
	e.s.db = faulty
	for i := range 2 {
		if _, err := e.login("alice", fmt.Sprint("wrong ", i), Web, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatal(err)
		}
	}
	faulty.fail.Store(true)
	for i := range 10 {
		_, err := e.login("alice", fmt.Sprint("outage ", i), Web, "192.0.2.1")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
			t.Fatalf("attempt %d during outage: %v, want ErrUnavailable only", i, err)
		}
		_, err = e.second("alice", totpCode(t, secret, e.clock.Now()), "192.0.2.1")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
			t.Fatalf("second factor %d during outage: %v, want ErrUnavailable only", i, err)
		}
	}
	faulty.fail.Store(false)
	// Two failures were charged before the outage, so exactly one more is
	// within the budget of three.
	if _, err := e.login("alice", "wrong 3", Web, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled) {
		t.Fatalf("third failure: %v, want a plain denial", err)
	}
	if _, err := e.login("alice", goodPassword, Web, "192.0.2.1"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("after the budget: %v, want ErrThrottled", err)
	}
}

func TestAuthenticateClosedStore(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	if _, err := e.login("alice", "wrong password", IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Fatal(err)
	}
	before := e.s.limit.accountCharges("alice")
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	for _, secret := range []string{goodPassword, "wrong again", "abcd efgh ijkl mnop qrst uvwx"} {
		_, err := e.login("alice", secret, IMAP, "192.0.2.1")
		if !errors.Is(err, ErrUnavailable) || errors.Is(err, ErrUnauthorized) {
			t.Fatalf("closed store: %v, want ErrUnavailable", err)
		}
	}
	if _, err := e.second("alice", "123456", "192.0.2.1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("second factor on a closed store: %v", err)
	}
	if after := e.s.limit.accountCharges("alice"); after != before {
		t.Fatalf("failures %d → %d while the store was closed", before, after)
	}
	e.s.FlushAudit() // must return, not hang or panic
	if err := e.s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestAuthenticateCancelledWhileSlowed(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{SourceFree: 1}))
	e.addUser(t, "alice")
	e.login("alice", "wrong 1", IMAP, "192.0.2.1")
	ctx, cancel := context.WithCancel(bg)
	cancel()
	before := e.kdfRuns()
	_, err := e.s.Authenticate(ctx, Attempt{Protocol: IMAP, Username: "alice", Secret: goodPassword, Source: addr("192.0.2.1")})
	if !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err = %v", err)
	}
	if e.kdfRuns() != before {
		t.Fatal("verified after the caller gave up")
	}
}

// TestAuthenticateAdmitted: the proxy's "start dialing" hook runs for every
// attempt the limiter lets through, right or wrong, and never for a
// throttled one.
func TestAuthenticateAdmitted(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{UserBudget: 2}))
	e.addUser(t, "alice")
	admitted := 0
	try := func(secret string) error {
		_, err := e.s.Authenticate(bg, Attempt{Protocol: IMAP, Username: "alice", Secret: secret,
			Source: addr("192.0.2.7"), Admitted: func() { admitted++ }})
		return err
	}
	for i, secret := range []string{"wrong-1-password", "wrong-2-password"} {
		try(secret)
		if admitted != i+1 {
			t.Fatalf("after %d attempts the hook ran %d times", i+1, admitted)
		}
	}
	if err := try("wrong-3-password"); !errors.Is(err, ErrThrottled) {
		t.Fatalf("over budget: %v", err)
	}
	if err := try(goodPassword); !errors.Is(err, ErrThrottled) {
		t.Fatalf("right password over budget: %v", err)
	}
	if admitted != 2 {
		t.Fatalf("the hook ran for a throttled attempt (%d calls)", admitted)
	}
}
