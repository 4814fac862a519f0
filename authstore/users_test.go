package authstore

import (
	"errors"
	"strings"
	"testing"
)

func TestCreateUser(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "existing")
	tests := []struct {
		name     string
		in       NewUser
		wantErr  error
		wantName string
		wantRole Role
	}{
		{"plain", NewUser{Name: "alice", Password: goodPassword}, nil, "alice", RoleUser},
		{"canonicalised", NewUser{Name: "  Bob@Example.ORG "}, nil, "bob@example.org", RoleUser},
		{"fullwidth", NewUser{Name: "ｃａｒｏｌ"}, nil, "carol", RoleUser},
		{"admin role", NewUser{Name: "dave", Role: RoleAdmin}, nil, "dave", RoleAdmin},
		{"duplicate", NewUser{Name: "existing"}, ErrExists, "", ""},
		{"duplicate other case", NewUser{Name: "EXISTING"}, ErrExists, "", ""},
		{"empty name", NewUser{Name: "   "}, ErrInvalid, "", ""},
		{"inner space", NewUser{Name: "a b"}, ErrInvalid, "", ""},
		{"slash", NewUser{Name: "a/b"}, ErrInvalid, "", ""},
		{"newline", NewUser{Name: "eve\nx"}, ErrInvalid, "", ""},
		{"nul", NewUser{Name: "eve\x00"}, ErrInvalid, "", ""},
		{"zero width", NewUser{Name: "e\u200bve"}, ErrInvalid, "", ""},
		{"invalid utf8", NewUser{Name: "e\xffve"}, ErrInvalid, "", ""},
		{"too long", NewUser{Name: strings.Repeat("a", maxUsernameLen+1)}, ErrInvalid, "", ""},
		{"unknown role", NewUser{Name: "frank", Role: "root"}, ErrInvalid, "", ""},
		{"short password", NewUser{Name: "gina", Password: "1234567"}, ErrInvalid, "", ""},
		{"long password", NewUser{Name: "hank", Password: strings.Repeat("x", maxPasswordBytes+1)}, ErrInvalid, "", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			u, err := e.s.CreateUser(bg, tc.in)
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if u.Name != tc.wantName || u.Role != tc.wantRole || u.ID == "" {
				t.Fatalf("got %+v, want name %q role %q", u, tc.wantName, tc.wantRole)
			}
			if u.HasPassword != (tc.in.Password != "") {
				t.Errorf("HasPassword = %v", u.HasPassword)
			}
			got, err := e.s.GetUser(bg, tc.in.Name)
			if err != nil || got.ID != u.ID {
				t.Fatalf("GetUser(%q) = %+v, %v", tc.in.Name, got, err)
			}
		})
	}
}

func TestListUsersSortedAndPublic(t *testing.T) {
	e := newTestStore(t)
	for _, n := range []string{"zoe", "adam", "Mia"} {
		e.addUser(t, n)
	}
	users, err := e.s.ListUsers(bg)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, u := range users {
		names = append(names, u.Name)
		if !u.HasPassword {
			t.Errorf("%s: HasPassword false", u.Name)
		}
	}
	if got := strings.Join(names, ","); got != "adam,mia,zoe" {
		t.Fatalf("names = %s", got)
	}
	hash := e.userRecord(t, "adam").PasswordHash
	assertNoSecret(t, users, goodPassword, hash, "argon2id")
}

func TestGetUserUnknown(t *testing.T) {
	e := newTestStore(t)
	for _, name := range []string{"nobody", "", "a\nb"} {
		t.Run(name, func(t *testing.T) {
			if _, err := e.s.GetUser(bg, name); !errors.Is(err, ErrNotFound) {
				t.Fatalf("err = %v, want ErrNotFound", err)
			}
		})
	}
}

func TestSetDisabled(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	tests := []struct {
		name     string
		user     string
		disabled bool
		wantErr  error
		wantRevs []Revocation
	}{
		{"disable", "alice", true, nil, []Revocation{{Username: "alice", Cause: CauseDisabled}}},
		{"enable via other case", "ALICE", false, nil, nil},
		{"unknown user", "bob", true, ErrNotFound, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.s.SetDisabled(bg, tc.user, tc.disabled)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			assertRevocations(t, e.revs.take(), tc.wantRevs)
			if tc.wantErr != nil {
				return
			}
			u, _ := e.s.GetUser(bg, tc.user)
			if u.Disabled != tc.disabled {
				t.Fatalf("Disabled = %v, want %v", u.Disabled, tc.disabled)
			}
			_, err = e.login(tc.user, goodPassword, IMAP, "192.0.2.1")
			if gotOK := err == nil; gotOK == tc.disabled {
				t.Fatalf("login while disabled=%v: %v", tc.disabled, err)
			}
		})
	}
}

func TestSetRole(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	tests := []struct {
		role    Role
		wantErr error
	}{
		{RoleAdmin, nil},
		{RoleUser, nil},
		{"superuser", ErrInvalid},
		{"", ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(string(tc.role), func(t *testing.T) {
			err := e.s.setRole(bg, "alice", tc.role)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if u, _ := e.s.GetUser(bg, "alice"); err == nil && u.Role != tc.role {
				t.Fatalf("role = %q", u.Role)
			}
		})
	}
}

func TestDeleteUser(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	ap, secret := e.addAppPassword(t, "alice")
	digest := e.appPwRecord(t, u.ID, ap.ID).Digest
	if err := e.s.DeleteUser(bg, " Alice "); err != nil {
		t.Fatal(err)
	}
	assertRevocations(t, e.revs.take(), []Revocation{{Username: "alice", Cause: CauseDeleted}})
	if _, err := e.s.GetUser(bg, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("GetUser after delete: %v", err)
	}
	if e.rawGet(t, bAppPwIndex, digest) != nil || e.rawGet(t, bAppPw, appPwKey(u.ID, ap.ID)) != nil {
		t.Fatal("app password left behind after delete")
	}
	if err := e.s.DeleteUser(bg, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
	// A new account with the old name must not inherit anything.
	e.addUser(t, "alice")
	if _, err := e.login("alice", secret, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("old app password after re-create: %v", err)
	}
}

func TestSetPassword(t *testing.T) {
	tests := []struct {
		name       string
		password   string
		revokeApps bool
		wantErr    error
		wantRev    []Revocation
	}{
		{"too short", "1234567", false, ErrInvalid, nil},
		{"too long", strings.Repeat("p", maxPasswordBytes+1), false, ErrInvalid, nil},
		{"shortest", "12345678", false, nil, []Revocation{{Username: "alice", PasswordOnly: true, Cause: CausePasswordChanged}}},
		{"longest", strings.Repeat("p", maxPasswordBytes), false, nil, []Revocation{{Username: "alice", PasswordOnly: true, Cause: CausePasswordChanged}}},
		{"revoke app passwords", "new password 1", true, nil, []Revocation{{Username: "alice", Cause: CauseAppPasswordsRevoked}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			_, appSecret := e.addAppPassword(t, "alice")
			before := e.kdfRuns()
			err := e.s.SetPassword(bg, "Alice", tc.password, tc.revokeApps)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			assertRevocations(t, e.revs.take(), tc.wantRev)
			if tc.wantErr != nil {
				if e.kdfRuns() != before {
					t.Error("a refused password was hashed")
				}
				if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); err != nil {
					t.Fatalf("old password after refused change: %v", err)
				}
				return
			}
			if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("old password still works: %v", err)
			}
			if _, err := e.login("alice", tc.password, IMAP, "192.0.2.1"); err != nil {
				t.Fatalf("new password: %v", err)
			}
			_, err = e.login("alice", appSecret, IMAP, "192.0.2.1")
			if appWorks := err == nil; appWorks == tc.revokeApps {
				t.Fatalf("app password after change (revoke=%v): %v", tc.revokeApps, err)
			}
			list, _ := e.s.ListAppPasswords(bg, "alice")
			if revoked := !list[0].Revoked.IsZero(); revoked != tc.revokeApps {
				t.Fatalf("listing Revoked = %v, want %v", list[0].Revoked, tc.revokeApps)
			}
		})
	}
}

func TestUpstreamPassword(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	if err := e.s.SetUpstreamPassword(bg, "alice", "upstream-secret"); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		user    string
		want    string
		wantErr error
	}{
		{"alice", "upstream-secret", nil},
		{"ALICE", "upstream-secret", nil},
		{"bob", "", ErrNotFound},
		{"nobody", "", ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.user, func(t *testing.T) {
			got, err := e.s.UpstreamPassword(bg, tc.user)
			if !errors.Is(err, tc.wantErr) || got != tc.want {
				t.Fatalf("got %q, %v; want %q, %v", got, err, tc.want, tc.wantErr)
			}
		})
	}
	if rec := e.rawGet(t, bUsers, "alice"); strings.Contains(string(rec), "upstream-secret") {
		t.Fatal("upstream password stored in the clear")
	}
}

// TestUpstreamPasswordSetAndClear: what an upstream login cannot carry is
// refused, the account says whether one is set (never what it is), and
// clearing it makes the stored-login lookup fail.
func TestUpstreamPasswordSetAndClear(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	for _, bad := range []string{"", "line\r\nbreak", "nul\x00", strings.Repeat("p", maxPasswordBytes+1)} {
		if err := e.s.SetUpstreamPassword(bg, "alice", bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("SetUpstreamPassword(%q): %v, want ErrInvalid", bad, err)
		}
	}
	if u, _ := e.s.GetUser(bg, "alice"); u.HasUpstreamPassword {
		t.Fatal("a refused upstream password counts as set")
	}
	if err := e.s.SetUpstreamPassword(bg, "alice", strings.Repeat("p", maxPasswordBytes)); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.s.GetUser(bg, "alice"); !u.HasUpstreamPassword {
		t.Fatal("HasUpstreamPassword is false after setting one")
	}
	if err := e.s.ClearUpstreamPassword(bg, "ALICE"); err != nil {
		t.Fatal(err)
	}
	if u, _ := e.s.GetUser(bg, "alice"); u.HasUpstreamPassword {
		t.Fatal("HasUpstreamPassword is true after clearing it")
	}
	if _, err := e.s.UpstreamPassword(bg, "alice"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("UpstreamPassword after clearing: %v, want ErrNotFound", err)
	}
	if err := e.s.ClearUpstreamPassword(bg, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("clearing an unknown user's: %v", err)
	}
}

func assertRevocations(t *testing.T, got, want []Revocation) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("revocations = %+v, want %+v", got, want)
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("revocation %d = %+v, want %+v", i, got[i], want[i])
		}
	}
}
