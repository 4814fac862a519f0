package authstore

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"testing"
	"time"
)

// auditStep is one change and the event it must leave behind; wantKind ""
// means the change is refused and must leave none.
type auditStep struct {
	name     string
	do       func(ctx context.Context) error
	wantKind string
	wantUser string
}

func TestAuditOneEventPerChange(t *testing.T) {
	e := newTestStore(t)
	ctx := WithActor(bg, Actor{Name: "admin:root", Source: addr("203.0.113.9")})
	var appID, totpSecret string
	var secrets []string
	keep := func(s ...string) { secrets = append(secrets, s...) }
	steps := []auditStep{
		{"create user", func(ctx context.Context) error {
			_, err := e.s.CreateUser(ctx, NewUser{Name: "Alice", Password: goodPassword})
			return err
		}, "user.create", "alice"},
		{"create duplicate", func(ctx context.Context) error {
			_, err := e.s.CreateUser(ctx, NewUser{Name: "alice"})
			return err
		}, "", ""},
		{"set role", func(ctx context.Context) error { return e.s.setRole(ctx, "alice", RoleAdmin) }, "user.role", "alice"},
		{"set bad role", func(ctx context.Context) error { return e.s.setRole(ctx, "alice", "root") }, "", ""},
		{"set password", func(ctx context.Context) error { return e.s.SetPassword(ctx, "alice", "new password!", false) }, "user.password", "alice"},
		{"set short password", func(ctx context.Context) error { return e.s.SetPassword(ctx, "alice", "short", false) }, "", ""},
		{"upstream password", func(ctx context.Context) error { return e.s.SetUpstreamPassword(ctx, "alice", "upstream pw") }, "user.upstream_password", "alice"},
		{"create app password", func(ctx context.Context) error {
			ap, secret, err := e.s.CreateAppPassword(ctx, "alice", NewAppPassword{Name: "phone"})
			appID = ap.ID
			keep(secret)
			return err
		}, "apppw.create", "alice"},
		{"revoke app password", func(ctx context.Context) error { return e.s.RevokeAppPassword(ctx, "alice", appID) }, "apppw.revoke", "alice"},
		{"revoke again", func(ctx context.Context) error { return e.s.RevokeAppPassword(ctx, "alice", appID) }, "", ""},
		{"disable mfa while off", func(ctx context.Context) error { return e.s.DisableMFA(ctx, "alice") }, "", ""},
		{"begin totp", func(ctx context.Context) error {
			enr, err := e.s.BeginTOTP(ctx, "alice")
			totpSecret = enr.Secret
			keep(enr.Secret)
			return err
		}, "mfa.enroll_begin", "alice"},
		{"confirm totp wrong", func(ctx context.Context) error {
			_, err := e.s.ConfirmTOTP(ctx, "alice", wrongCode(totpCode(t, totpSecret, e.clock.Now())))
			return err
		}, "", ""},
		{"confirm totp", func(ctx context.Context) error {
			codes, err := e.s.ConfirmTOTP(ctx, "alice", totpCode(t, totpSecret, e.clock.Now()))
			keep(codes...)
			return err
		}, "mfa.enable", "alice"},
		{"backup codes", func(ctx context.Context) error {
			codes, err := e.s.GenerateBackupCodes(ctx, "alice")
			keep(codes...)
			return err
		}, "mfa.backup_codes", "alice"},
		{"admin code", func(ctx context.Context) error {
			code, err := e.s.IssueAdminCode(ctx, "alice", time.Hour)
			keep(code)
			return err
		}, "mfa.admin_code", "alice"},
		{"disable user", func(ctx context.Context) error { return e.s.SetDisabled(ctx, "alice", true) }, "user.disable", "alice"},
		{"admin code for disabled", func(ctx context.Context) error {
			_, err := e.s.IssueAdminCode(ctx, "alice", time.Hour)
			return err
		}, "", ""},
		{"enable user", func(ctx context.Context) error { return e.s.SetDisabled(ctx, "alice", false) }, "user.enable", "alice"},
		{"disable mfa", func(ctx context.Context) error { return e.s.DisableMFA(ctx, "alice") }, "mfa.disable", "alice"},
		{"reset mfa", func(ctx context.Context) error { return e.s.ResetMFA(ctx, "alice") }, "mfa.reset", "alice"},
		{"policy", func(ctx context.Context) error { return e.s.SetPolicy(ctx, Policy{MFARequired: true}) }, "policy.mfa", ""},
		{"delete user", func(ctx context.Context) error { return e.s.DeleteUser(ctx, "alice") }, "user.delete", "alice"},
		{"delete unknown", func(ctx context.Context) error { return e.s.DeleteUser(ctx, "alice") }, "", ""},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := auditCount(t, e)
			err := st.do(ctx)
			if (err == nil) != (st.wantKind != "") {
				t.Fatalf("err = %v", err)
			}
			evs := auditSince(t, e, before)
			if st.wantKind == "" {
				if len(evs) != 0 {
					t.Fatalf("refused change left events %+v", evs)
				}
				return
			}
			if len(evs) != 1 {
				t.Fatalf("%d events, want 1: %+v", len(evs), evs)
			}
			ev := evs[0]
			if ev.Kind != st.wantKind || ev.User != st.wantUser || ev.Actor != "admin:root" ||
				ev.Source != "203.0.113.9" || !ev.Time.Equal(e.clock.Now()) {
				t.Fatalf("event %+v, want kind %s user %q", ev, st.wantKind, st.wantUser)
			}
		})
	}
	all, _ := e.s.AuditTail(bg, 1000)
	keep(goodPassword, "new password!", "upstream pw")
	assertNoSecret(t, all, secrets...)
	if n, err := e.s.VerifyAudit(bg); err != nil || n != len(all) {
		t.Fatalf("VerifyAudit = %d, %v; want %d events", n, err, len(all))
	}
}

func TestAuditSignInEvents(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{UserBudget: 1}))
	e.addUser(t, "alice")
	secret, _ := e.enableTOTP(t, "alice")
	steps := []struct {
		name       string
		do         func() error
		wantKind   string
		wantResult string
	}{
		{"login ok", func() error { _, err := e.login("alice", goodPassword, Web, "192.0.2.1"); return err }, "login", "ok"},
		{"second factor ok", func() error {
			_, err := e.second("alice", totpCode(t, secret, e.clock.Now()), "192.0.2.1")
			return err
		}, "second_factor", "ok"},
		{"second factor replay", func() error {
			_, err := e.second("alice", totpCode(t, secret, e.clock.Now()), "192.0.2.1")
			return err
		}, "second_factor", "denied"},
		{"login denied", func() error { _, err := e.login("alice", "wrong password", IMAP, "192.0.2.2"); return err }, "login", "denied"},
		{"login throttled", func() error { _, err := e.login("alice", "wrong again", IMAP, "192.0.2.2"); return err }, "login", "throttled"},
	}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			before := auditCount(t, e)
			err := st.do()
			if (err == nil) != (st.wantResult == "ok") {
				t.Fatalf("err = %v", err)
			}
			e.s.FlushAudit()
			evs := auditSince(t, e, before)
			if len(evs) != 1 || evs[0].Kind != st.wantKind || evs[0].Result != st.wantResult || evs[0].User != "alice" {
				t.Fatalf("events %+v, want one %s/%s", evs, st.wantKind, st.wantResult)
			}
		})
	}
	all, _ := e.s.AuditTail(bg, 100)
	assertNoSecret(t, all, goodPassword, "wrong password", "wrong again", secret)
}

func auditCount(t *testing.T, e *testEnv) int {
	t.Helper()
	n, err := e.s.VerifyAudit(bg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func auditSince(t *testing.T, e *testEnv, before int) []Event {
	t.Helper()
	all, err := e.s.AuditTail(bg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	return all[before:]
}

func TestAuditTail(t *testing.T) {
	e := newTestStore(t)
	for _, n := range []string{"a", "b", "c"} {
		e.addUser(t, n)
	}
	tests := []struct {
		n     int
		users string
	}{
		{-1, ""}, {0, ""}, {1, "c"}, {2, "bc"}, {3, "abc"}, {10, "abc"},
	}
	for _, tc := range tests {
		t.Run(fmt.Sprint("n=", tc.n), func(t *testing.T) {
			evs, err := e.s.AuditTail(bg, tc.n)
			if err != nil {
				t.Fatal(err)
			}
			got := ""
			for _, ev := range evs {
				got += ev.User
			}
			if got != tc.users {
				t.Fatalf("AuditTail(%d) users %q, want %q", tc.n, got, tc.users)
			}
		})
	}
}

func TestVerifyAuditDetectsTampering(t *testing.T) {
	tests := []struct {
		name   string
		tamper func(t *testing.T, e *testEnv)
	}{
		{"edit a field, keep the hash", func(t *testing.T, e *testEnv) {
			editEvent(t, e, 2, func(ev *Event) { ev.User = "mallory" })
		}},
		{"edit a field, rehash", func(t *testing.T, e *testEnv) {
			editEvent(t, e, 2, func(ev *Event) { ev.Detail = "admin"; ev.Hash = eventHash(*ev) })
		}},
		{"flip one byte", func(t *testing.T, e *testEnv) {
			raw := e.rawGet(t, bAudit, auditKey(2))
			raw[len(raw)/2] ^= 0x01
			e.rawPut(t, bAudit, auditKey(2), raw)
		}},
		{"delete a middle event", func(t *testing.T, e *testEnv) {
			e.s.db.Update(func(tx kvTx) error { return tx.Delete(bAudit, auditKey(2)) })
		}},
		{"delete the last event", func(t *testing.T, e *testEnv) {
			e.s.db.Update(func(tx kvTx) error { return tx.Delete(bAudit, auditKey(3)) })
		}},
		{"swap two events", func(t *testing.T, e *testEnv) {
			a, b := e.rawGet(t, bAudit, auditKey(1)), e.rawGet(t, bAudit, auditKey(2))
			e.rawPut(t, bAudit, auditKey(1), b)
			e.rawPut(t, bAudit, auditKey(2), a)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			for _, n := range []string{"a", "b", "c"} {
				e.addUser(t, n)
			}
			if n, err := e.s.VerifyAudit(bg); err != nil || n != 3 {
				t.Fatalf("before tampering: %d, %v", n, err)
			}
			tc.tamper(t, e)
			if _, err := e.s.VerifyAudit(bg); !errors.Is(err, ErrAuditChain) {
				t.Fatalf("err = %v, want ErrAuditChain", err)
			}
		})
	}
}

func editEvent(t *testing.T, e *testEnv, seq uint64, fn func(*Event)) {
	t.Helper()
	var ev Event
	if err := json.Unmarshal(e.rawGet(t, bAudit, auditKey(seq)), &ev); err != nil {
		t.Fatal(err)
	}
	fn(&ev)
	data, _ := json.Marshal(ev)
	e.rawPut(t, bAudit, auditKey(seq), data)
}

// TestOnRevoke checks each credential change reports the sessions to end,
// once, after it committed (the callback sees the new state and may use
// the store).
func TestOnRevoke(t *testing.T) {
	type change struct {
		name string
		do   func(e *testEnv, appID string) error
		want func(appID string) []Revocation
	}
	alice := func(r Revocation) func(string) []Revocation {
		return func(string) []Revocation { return []Revocation{r} }
	}
	none := func(string) []Revocation { return nil }
	tests := []change{
		{"revoke app password", func(e *testEnv, id string) error { return e.s.RevokeAppPassword(bg, "alice", id) },
			func(id string) []Revocation {
				return []Revocation{{Username: "alice", AppPassID: id, Cause: CauseAppPasswordRevoked}}
			}},
		{"set password", func(e *testEnv, _ string) error { return e.s.SetPassword(bg, "alice", "another password", false) },
			alice(Revocation{Username: "alice", PasswordOnly: true, Cause: CausePasswordChanged})},
		{"set password, revoke apps", func(e *testEnv, _ string) error { return e.s.SetPassword(bg, "alice", "another password", true) },
			alice(Revocation{Username: "alice", Cause: CauseAppPasswordsRevoked})},
		{"disable", func(e *testEnv, _ string) error { return e.s.SetDisabled(bg, "alice", true) }, alice(Revocation{Username: "alice", Cause: CauseDisabled})},
		{"enable", func(e *testEnv, _ string) error { return e.s.SetDisabled(bg, "alice", false) }, none},
		{"delete", func(e *testEnv, _ string) error { return e.s.DeleteUser(bg, "alice") }, alice(Revocation{Username: "alice", Cause: CauseDeleted})},
		{"reset mfa", func(e *testEnv, _ string) error { return e.s.ResetMFA(bg, "alice") }, alice(Revocation{Username: "alice", Cause: CauseMFAReset})},
		{"confirm totp", func(e *testEnv, _ string) error { e.enableTOTP(t, "alice"); return nil },
			alice(Revocation{Username: "alice", PasswordOnly: true, Cause: CauseMFAEnabled})},
		{"policy required", func(e *testEnv, _ string) error { return e.s.SetPolicy(bg, Policy{MFARequired: true}) },
			alice(Revocation{PasswordOnly: true, Cause: CauseMFARequired})},
		{"policy required with grace", func(e *testEnv, _ string) error {
			return e.s.SetPolicy(bg, Policy{MFARequired: true, GraceUntil: epoch.Add(time.Hour)})
		}, none},
		{"new app password", func(e *testEnv, _ string) error { e.addAppPassword(t, "alice"); return nil }, none},
		{"set role", func(e *testEnv, _ string) error { return e.s.setRole(bg, "alice", RoleAdmin) }, none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var e *testEnv
			var seenAudit []int
			e = newTestStore(t, func(o *Options) {
				rec := o.OnRevoke
				o.OnRevoke = func(r Revocation) {
					// Committed: the change's own event is already readable,
					// and a write from the callback does not deadlock.
					seenAudit = append(seenAudit, auditCount(t, e))
					if err := e.s.SetUpstreamPassword(bg, "bob", "x"); err != nil {
						t.Errorf("write from OnRevoke: %v", err)
					}
					rec(r)
				}
			})
			e.addUser(t, "alice")
			e.addUser(t, "bob")
			ap, _ := e.addAppPassword(t, "alice")
			e.revs.take()
			before := auditCount(t, e)
			if err := tc.do(e, ap.ID); err != nil {
				t.Fatal(err)
			}
			want := tc.want(ap.ID)
			assertRevocations(t, e.revs.take(), want)
			for _, n := range seenAudit {
				if n <= before {
					t.Fatalf("OnRevoke ran before the change was committed (%d events, had %d)", n, before)
				}
			}
		})
	}
}

// TestW5_UpstreamOutcomeIsAudited: a login granted for a front-end that logs
// in upstream is audited once, when the front-end settles it, with the
// outcome the client got: a failed upstream login is "unavailable", not a
// sign-in. A renewal is never audited, and a settle after the first counts
// for nothing.
func TestW5_UpstreamOutcomeIsAudited(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	attempt := Attempt{Protocol: IMAP, Username: "alice", Secret: goodPassword, Source: addr("192.0.2.1"), Upstream: true}
	tests := []struct {
		name          string
		renewal       bool
		settle        []error
		reason        string
		result, wantR string // result and reason of the one event; "" for none
	}{
		{"upstream down", false, []error{fmt.Errorf("dial: %w", errors.New("refused")), nil}, "upstream_error", "unavailable", "upstream_error"},
		{"logged in", false, []error{nil, errors.New("late")}, "", "ok", "account_password"},
		{"ended during login", false, []error{fmt.Errorf("kicked: %w", ErrUnauthorized)}, "ended_during_login", "denied", "ended_during_login"},
		{"renewal", true, []error{errors.New("down")}, "upstream_error", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := auditCount(t, e)
			a := attempt
			a.Renewal = tt.renewal
			g, err := e.s.Authenticate(bg, a)
			if err != nil {
				t.Fatal(err)
			}
			e.s.FlushAudit()
			if evs := auditSince(t, e, before); len(evs) != 0 {
				t.Fatalf("audited before the upstream login settled: %+v", evs)
			}
			for _, err := range tt.settle {
				g.Settle(err, tt.reason)
			}
			e.s.FlushAudit()
			evs := auditSince(t, e, before)
			if tt.result == "" {
				if len(evs) != 0 {
					t.Fatalf("a renewal was audited: %+v", evs)
				}
				return
			}
			if len(evs) != 1 || evs[0].Kind != "login" || evs[0].Result != tt.result || evs[0].Reason != tt.wantR ||
				evs[0].User != "alice" || evs[0].Protocol != IMAP || evs[0].Source != "192.0.2.1" {
				t.Fatalf("events %+v, want one login %s/%s", evs, tt.result, tt.wantR)
			}
		})
	}
}

// refusingKV fails every write while refuse is set, as a full disk does.
type refusingKV struct {
	kv
	refuse atomic.Bool
}

func (r *refusingKV) Update(fn func(kvTx) error) error {
	if r.refuse.Load() {
		return errors.New("write postern.db: no space left on device")
	}
	return r.kv.Update(fn)
}

// TestS2_AuditKeptThroughFailedWrites: sign-in events that could not be
// written while the store refused writes are written, in order and
// chained, with the first batch that can be: late, not lost.
func TestS2_AuditKeptThroughFailedWrites(t *testing.T) {
	e := newTestStore(t)
	db := &refusingKV{kv: e.s.db}
	w := newAuditWriter(db, e.clock.Now, slog.New(slog.DiscardHandler))
	defer w.close()
	db.refuse.Store(true)
	for i := range 3 {
		w.enqueue(Event{Kind: "login", User: fmt.Sprint("held", i), Result: "denied"})
		w.flush()
	}
	db.refuse.Store(false)
	w.enqueue(Event{Kind: "login", User: "after", Result: "ok"})
	w.flush()
	evs, err := e.s.AuditTail(bg, 100)
	if err != nil {
		t.Fatal(err)
	}
	var users []string
	for _, ev := range evs {
		users = append(users, ev.User)
	}
	if want := []string{"held0", "held1", "held2", "after"}; !slices.Equal(users, want) {
		t.Errorf("audit log after the store took writes again: %q, want %q", users, want)
	}
	if _, err := e.s.VerifyAudit(bg); err != nil {
		t.Errorf("audit chain: %v", err)
	}
}
