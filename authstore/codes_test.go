package authstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestBackupCodes(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, codes := e.enableTOTP(t, "alice")
	tests := []struct {
		name          string
		code          string
		wantOK        bool
		wantRemaining int
	}{
		{"as shown", codes[0], true, 4},
		{"same again", codes[0], false, 0},
		{"without spaces", strings.ReplaceAll(codes[1], " ", ""), true, 3},
		{"with dashes", strings.ReplaceAll(codes[2], " ", "-"), true, 2},
		{"unknown code", "0000 0000 0000", false, 0},
		{"eleven digits", codes[3][:13], false, 0},
		{"letters", "abcd efgh ijkl", false, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == "0000 0000 0000" && containsCode(codes, tc.code) {
				t.Skip("drawn code collides")
			}
			res, err := e.second("alice", tc.code, "192.0.2.1")
			if !tc.wantOK {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("err = %v, want ErrUnauthorized", err)
				}
				return
			}
			if err != nil || res.Method != "backup" || res.BackupRemaining != tc.wantRemaining {
				t.Fatalf("got %+v, %v; want backup with %d left", res, err, tc.wantRemaining)
			}
			if u, _ := e.s.GetUser(bg, "alice"); u.MFA.BackupRemaining != tc.wantRemaining {
				t.Fatalf("status says %d left", u.MFA.BackupRemaining)
			}
		})
	}
}

func containsCode(codes []string, c string) bool {
	for _, x := range codes {
		if x == c {
			return true
		}
	}
	return false
}

func TestGenerateBackupCodes(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "nomfa")
	_, old := e.enableTOTP(t, "alice")
	if _, err := e.s.GenerateBackupCodes(bg, "nomfa"); !errors.Is(err, ErrState) {
		t.Fatalf("codes for a user without a factor: %v", err)
	}
	if _, err := e.s.GenerateBackupCodes(bg, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("codes for an unknown user: %v", err)
	}
	fresh, err := e.s.GenerateBackupCodes(bg, "Alice")
	if err != nil {
		t.Fatal(err)
	}
	checkCodes(t, fresh, 5)
	for _, c := range old {
		if containsCode(fresh, c) {
			continue // a repeat across sets is allowed, just unlikely
		}
		if _, err := e.second("alice", c, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("old code %s still works: %v", c, err)
		}
	}
	if res, err := e.second("alice", fresh[4], "192.0.2.1"); err != nil || res.BackupRemaining != 4 {
		t.Fatalf("new code: %+v, %v", res, err)
	}
}

func TestBackupCodesSurviveKDFChange(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, codes := e.enableTOTP(t, "alice")
	// An operator raising the KDF cost must not lock users out of the
	// codes they printed earlier.
	e.reopen(t, withKDF(KDFParams{Memory: 128, Time: 2, Threads: 1}))
	if _, err := e.second("alice", codes[0], "192.0.2.1"); err != nil {
		t.Fatalf("backup code after a KDF change: %v", err)
	}
	if _, err := e.login("alice", goodPassword, Web, "192.0.2.1"); err != nil {
		t.Fatalf("password after a KDF change: %v", err)
	}
}

func TestIssueAdminCode(t *testing.T) {
	e := newTestStore(t)
	for _, n := range []string{"alice", "nomfa", "off"} {
		e.addUser(t, n)
	}
	e.enableTOTP(t, "alice")
	e.enableTOTP(t, "off")
	if err := e.s.SetDisabled(bg, "off", true); err != nil {
		t.Fatal(err)
	}
	refused := []struct {
		user    string
		wantErr error
	}{
		{"nomfa", ErrState},
		{"off", ErrState},
		{"nobody", ErrNotFound},
	}
	for _, tc := range refused {
		t.Run("refused for "+tc.user, func(t *testing.T) {
			if _, err := e.s.IssueAdminCode(bg, tc.user, 0); !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
		})
	}
	expiry := []struct {
		name   string
		ttl    time.Duration
		wait   time.Duration
		wantOK bool
	}{
		{"default ttl, just inside", 0, DefaultAdminCodeTTL - time.Second, true},
		{"default ttl, at expiry", 0, DefaultAdminCodeTTL, false},
		{"short ttl, inside", time.Hour, 59 * time.Minute, true},
		{"short ttl, after", time.Hour, 61 * time.Minute, false},
	}
	for _, tc := range expiry {
		t.Run(tc.name, func(t *testing.T) {
			code, err := e.s.IssueAdminCode(bg, "alice", tc.ttl)
			if err != nil {
				t.Fatal(err)
			}
			if !codeShape.MatchString(code) {
				t.Fatalf("code %q not grouped 4-4-4", code)
			}
			e.clock.Advance(tc.wait)
			res, err := e.second("alice", code, "192.0.2.1")
			if !tc.wantOK {
				if !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("expired code: %v", err)
				}
				return
			}
			if err != nil || res.Method != "admin_code" || res.BackupRemaining != 5 {
				t.Fatalf("got %+v, %v", res, err)
			}
			if _, err := e.second("alice", code, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("admin code used twice: %v", err)
			}
		})
	}
}

func TestDisableMFA(t *testing.T) {
	tests := []struct {
		name    string
		enable  bool
		policy  bool
		wantErr error
	}{
		{"on", true, false, nil},
		{"already off", false, false, ErrState},
		{"required by policy", true, true, ErrState},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			var codes []string
			if tc.enable {
				_, codes = e.enableTOTP(t, "alice")
			}
			if tc.policy {
				if err := e.s.SetPolicy(bg, Policy{MFARequired: true}); err != nil {
					t.Fatal(err)
				}
			}
			e.revs.take()
			err := e.s.DisableMFA(bg, "alice")
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if revs := e.revs.take(); len(revs) != 0 {
				t.Fatalf("turning a factor off ended sessions: %+v", revs)
			}
			u, _ := e.s.GetUser(bg, "alice")
			if wantOn := tc.wantErr != nil && tc.enable; u.MFA.Enabled != wantOn {
				t.Fatalf("Enabled = %v, want %v", u.MFA.Enabled, wantOn)
			}
			if tc.wantErr != nil {
				return
			}
			if u.MFA.BackupRemaining != 0 {
				t.Fatalf("backup codes kept: %+v", u.MFA)
			}
			if _, err := e.second("alice", codes[0], "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("backup code after disable: %v", err)
			}
			if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); err != nil {
				t.Fatalf("account password over IMAP after disable: %v", err)
			}
		})
	}
}

func TestResetMFA(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	secret, codes := e.enableTOTP(t, "alice")
	code, err := e.s.IssueAdminCode(bg, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.second("alice", totpCode(t, secret, e.clock.Now()), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	lastStep := e.userRecord(t, "alice").TOTP.LastStep
	e.revs.take()
	if err := e.s.ResetMFA(bg, "ALICE"); err != nil {
		t.Fatal(err)
	}
	assertRevocations(t, e.revs.take(), []Revocation{{Username: "alice", Cause: CauseMFAReset}})
	rec := e.userRecord(t, "alice")
	if rec.TOTP.Enabled || rec.TOTP.Sealed != nil || rec.Backup != nil || rec.AdminCode != nil {
		t.Fatalf("factors left after reset: %+v", rec.TOTP)
	}
	if rec.TOTP.LastStep != lastStep {
		t.Fatalf("last step %d, want %d kept", rec.TOTP.LastStep, lastStep)
	}
	e.clock.Advance(30 * time.Second)
	for _, c := range []string{totpCode(t, secret, e.clock.Now()), codes[1], code} {
		if _, err := e.second("alice", c, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("code %s after reset: %v", c, err)
		}
	}
	if err := e.s.ResetMFA(bg, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("reset unknown: %v", err)
	}
}

func TestPolicy(t *testing.T) {
	e := newTestStore(t)
	if p, err := e.s.Policy(bg); err != nil || p != (Policy{}) {
		t.Fatalf("default policy %+v, %v", p, err)
	}
	grace := epoch.Add(7 * 24 * time.Hour)
	tests := []struct {
		name    string
		in      Policy
		want    Policy
		wantRev []Revocation
	}{
		{"required with grace", Policy{MFARequired: true, GraceUntil: grace.In(time.FixedZone("x", 3600))},
			Policy{MFARequired: true, GraceUntil: grace}, nil},
		{"required, grace over", Policy{MFARequired: true, GraceUntil: epoch.Add(-time.Second)},
			Policy{MFARequired: true, GraceUntil: epoch.Add(-time.Second)}, []Revocation{{PasswordOnly: true, Cause: CauseMFARequired}}},
		{"required, no grace", Policy{MFARequired: true}, Policy{MFARequired: true}, []Revocation{{PasswordOnly: true, Cause: CauseMFARequired}}},
		{"off drops grace", Policy{GraceUntil: grace}, Policy{}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := e.s.SetPolicy(bg, tc.in); err != nil {
				t.Fatal(err)
			}
			got, err := e.s.Policy(bg)
			if err != nil || got.MFARequired != tc.want.MFARequired || !got.GraceUntil.Equal(tc.want.GraceUntil) {
				t.Fatalf("policy = %+v, %v; want %+v", got, err, tc.want)
			}
			if got.GraceUntil.Location() != time.UTC {
				t.Errorf("grace stored in %v, want UTC", got.GraceUntil.Location())
			}
			assertRevocations(t, e.revs.take(), tc.wantRev)
		})
	}
}

// TestDamagedCodeSet: a record whose code set lost used-flags (a damaged or
// hand-edited file) fails closed instead of panicking on the right code.
func TestDamagedCodeSet(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, codes := e.enableTOTP(t, "alice")
	rec := e.userRecord(t, "alice")
	rec.Backup.Used = rec.Backup.Used[:2]
	data, _ := json.Marshal(rec)
	e.rawPut(t, bUsers, "alice", data)
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("panic: %v", r)
		}
	}()
	if _, err := e.second("alice", codes[4], "192.0.2.1"); err == nil {
		t.Fatal("a code from a damaged set was accepted")
	}
}

// biasedReader yields, for k = 0, 1, 2, …, the bytes 255 and limit (both
// at or above the rejection limit) and then k % limit.
type biasedReader struct {
	limit int
	n     int // bytes produced
}

func (r *biasedReader) Read(p []byte) (int, error) {
	for i := range p {
		k, pos := r.n/3, r.n%3
		switch pos {
		case 0:
			p[i] = 255
		case 1:
			p[i] = byte(r.limit)
		default:
			p[i] = byte(k % r.limit)
		}
		r.n++
	}
	return len(p), nil
}

// TestA6_NoModuloBias: codes and app passwords are drawn by rejection
// sampling: random bytes at or above the largest multiple of the alphabet's
// size (250 for digits, 234 for letters) are dropped, never mapped to a
// symbol, which would make the first symbols likelier.
func TestA6_NoModuloBias(t *testing.T) {
	tests := []struct {
		name     string
		alphabet string
		draw     func(*biasedReader) (string, error)
		n        int
	}{
		{"backup code", "0123456789", func(r *biasedReader) (string, error) { return newNumericCode(r) }, backupCodeLen},
		{"app password", "abcdefghijklmnopqrstuvwxyz", func(r *biasedReader) (string, error) { return newAppPassword(r) }, appPasswordLen},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			limit := 256 - 256%len(tc.alphabet)
			got, err := tc.draw(&biasedReader{limit: limit})
			if err != nil {
				t.Fatal(err)
			}
			var want strings.Builder
			for k := range tc.n {
				want.WriteByte(tc.alphabet[(k%limit)%len(tc.alphabet)])
			}
			if got != want.String() {
				t.Fatalf("drew %q from a stream whose only usable bytes give %q: bytes ≥ %d were used", got, want.String(), limit)
			}
		})
	}
}
