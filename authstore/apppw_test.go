package authstore

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

var appPwShape = regexp.MustCompile(`^[a-z]{4}( [a-z]{4}){5}$`)

func TestCreateAppPassword(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	tests := []struct {
		name       string
		in         NewAppPassword
		wantErr    error
		wantScopes []Protocol
	}{
		{"all scopes by default", NewAppPassword{Name: "phone"}, nil, AllScopes},
		{"limited", NewAppPassword{Name: "calendar", Scopes: []Protocol{CalDAV, CardDAV}}, nil, []Protocol{CalDAV, CardDAV}},
		{"duplicates dropped", NewAppPassword{Name: "mail", Scopes: []Protocol{IMAP, POP3, IMAP}}, nil, []Protocol{IMAP, POP3}},
		{"future expiry", NewAppPassword{Name: "trip", Expires: epoch.Add(time.Hour)}, nil, AllScopes},
		{"name trimmed", NewAppPassword{Name: "  laptop  "}, nil, AllScopes},
		{"expiry now", NewAppPassword{Name: "x", Expires: epoch}, ErrInvalid, nil},
		{"expiry in the past", NewAppPassword{Name: "x", Expires: epoch.Add(-time.Second)}, ErrInvalid, nil},
		{"web scope", NewAppPassword{Name: "x", Scopes: []Protocol{Web}}, ErrInvalid, nil},
		{"sending only", NewAppPassword{Name: "scanner", Scopes: []Protocol{SMTP}}, nil, []Protocol{SMTP}},
		{"unknown scope", NewAppPassword{Name: "x", Scopes: []Protocol{"fax"}}, ErrInvalid, nil},
		{"dav is no scope", NewAppPassword{Name: "x", Scopes: []Protocol{DAV}}, ErrInvalid, nil},
		{"empty name", NewAppPassword{Name: "  "}, ErrInvalid, nil},
		{"control in name", NewAppPassword{Name: "a\nb"}, ErrInvalid, nil},
		{"long name", NewAppPassword{Name: strings.Repeat("n", 101)}, ErrInvalid, nil},
	}
	seen := map[string]bool{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ap, secret, err := e.s.CreateAppPassword(bg, "alice", tc.in)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if err != nil {
				if secret != "" || ap.ID != "" {
					t.Fatalf("refused create returned %+v %q", ap, secret)
				}
				return
			}
			if !appPwShape.MatchString(secret) {
				t.Fatalf("secret %q is not 24 letters in groups of 4", secret)
			}
			if seen[secret] {
				t.Fatal("secret repeated")
			}
			seen[secret] = true
			if !slices.Equal(ap.Scopes, tc.wantScopes) || ap.Name != strings.TrimSpace(tc.in.Name) || ap.User != "alice" {
				t.Fatalf("got %+v", ap)
			}
			if !ap.Expires.Equal(tc.in.Expires) {
				t.Fatalf("Expires = %v, want %v", ap.Expires, tc.in.Expires)
			}
			assertNoSecret(t, ap, secret)
		})
	}
	if _, _, err := e.s.CreateAppPassword(bg, "nobody", NewAppPassword{Name: "x"}); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestParseScopes(t *testing.T) {
	tests := []struct {
		in      string
		want    []Protocol
		wantErr bool
	}{
		{"", nil, false},
		{"  ", nil, false},
		{"imap", []Protocol{IMAP}, false},
		{"IMAP, pop3 ,CalDAV", []Protocol{IMAP, POP3, CalDAV}, false},
		{"imap,imap", []Protocol{IMAP}, false},
		{"imap,carddav,pop3,caldav", []Protocol{IMAP, CardDAV, POP3, CalDAV}, false},
		{"web", nil, true},
		{"imap,", nil, true},
		{"smtp", []Protocol{SMTP}, false},
		{"imap,SMTP", []Protocol{IMAP, SMTP}, false},
		{"submission", nil, true},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseScopes(tc.in)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v", err)
			}
			if tc.wantErr && !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
			if !slices.Equal(got, tc.want) {
				t.Fatalf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestListAppPasswordsNeverShowsSecrets(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	e.addUser(t, "bob")
	var secrets []string
	for i := range 3 {
		ap, secret := e.addAppPassword(t, "alice")
		secrets = append(secrets, secret, e.appPwRecord(t, u.ID, ap.ID).Digest)
		e.clock.Advance(time.Duration(i+1) * time.Minute)
	}
	e.addAppPassword(t, "bob")
	list, err := e.s.ListAppPasswords(bg, "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 3 {
		t.Fatalf("listed %d app passwords, want 3 (only alice's)", len(list))
	}
	for i := 1; i < len(list); i++ {
		if !list[i-1].Created.After(list[i].Created) {
			t.Fatalf("not newest first: %v then %v", list[i-1].Created, list[i].Created)
		}
	}
	assertNoSecret(t, list, secrets...)
	if _, err := e.s.ListAppPasswords(bg, "nobody"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("unknown user: %v", err)
	}
}

func TestRevokeAppPassword(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	ap, secret := e.addAppPassword(t, "alice")
	bobAp, _ := e.addAppPassword(t, "bob")
	tests := []struct {
		name    string
		user    string
		id      string
		wantErr error
		wantRev []Revocation
	}{
		{"another user's id", "alice", bobAp.ID, ErrNotFound, nil},
		{"unknown id", "alice", "0000000000000000", ErrNotFound, nil},
		{"unknown user", "carol", ap.ID, ErrNotFound, nil},
		{"revoke", "Alice", ap.ID, nil, []Revocation{{Username: "alice", AppPassID: ap.ID, Cause: CauseAppPasswordRevoked}}},
		{"revoke twice", "alice", ap.ID, ErrState, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := e.s.RevokeAppPassword(bg, tc.user, tc.id)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			assertRevocations(t, e.revs.take(), tc.wantRev)
		})
	}
	list, _ := e.s.ListAppPasswords(bg, "alice")
	if len(list) != 1 || !list[0].Revoked.Equal(epoch) {
		t.Fatalf("listing after revoke: %+v", list)
	}
	if _, err := e.login("alice", secret, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("revoked app password: %v", err)
	}
}

// TestP10_RevokedDespiteStaleIndex: the decision reads the record's own
// revoked flag and expiry, so an index entry a revocation failed to delete
// (or one restored with an old backup) never lets the app password in.
func TestP10_RevokedDespiteStaleIndex(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	tests := []struct {
		name   string
		spoil  func(t *testing.T, id string) // the change whose index entry stays
		reason string
	}{
		{"revoked", func(t *testing.T, id string) {
			if err := e.s.RevokeAppPassword(bg, "alice", id); err != nil {
				t.Fatal(err)
			}
		}, "app_password_revoked"},
		{"expired", func(t *testing.T, id string) {
			rec := e.appPwRecord(t, u.ID, id)
			rec.Expires = e.clock.Now().Add(-time.Second)
			data, _ := json.Marshal(rec)
			e.rawPut(t, bAppPw, appPwKey(u.ID, id), data)
		}, "app_password_expired"},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ap, secret := e.addAppPassword(t, "alice")
			digest := e.appPwRecord(t, u.ID, ap.ID).Digest
			index := e.rawGet(t, bAppPwIndex, digest)
			tc.spoil(t, ap.ID)
			e.rawPut(t, bAppPwIndex, digest, index) // as if the delete had been missed
			src := fmt.Sprintf("192.0.2.%d", i+1)
			if _, err := e.login("alice", secret, IMAP, src); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("app password with a stale index entry: %v, want ErrUnauthorized", err)
			}
			e.s.FlushAudit()
			evs, err := e.s.AuditTail(bg, 1)
			if err != nil || len(evs) != 1 || evs[0].Result != "denied" || evs[0].Reason != tc.reason {
				t.Fatalf("audit %+v, %v; want denied for %s", evs, err, tc.reason)
			}
		})
	}
}

func TestAppPasswordLastUsed(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	ap, secret := e.addAppPassword(t, "alice")
	e.clock.Advance(time.Hour)
	usedAt := e.clock.Now()
	_, err := e.s.Authenticate(bg, Attempt{Protocol: IMAP, Username: "alice", Secret: secret,
		Source: addr("2001:db8::7"), Client: "Thunderbird"})
	if err != nil {
		t.Fatal(err)
	}
	if stored := e.appPwRecord(t, u.ID, ap.ID); !stored.LastUsed.IsZero() {
		t.Fatal("a login wrote last-used to the store at once")
	}
	want := func(t *testing.T, got AppPassword) {
		t.Helper()
		if !got.LastUsed.Equal(usedAt) || got.LastIP != "2001:db8::7" || got.LastClient != "Thunderbird" {
			t.Fatalf("last used = %v %q %q", got.LastUsed, got.LastIP, got.LastClient)
		}
	}
	t.Run("listing before flush", func(t *testing.T) {
		list, _ := e.s.ListAppPasswords(bg, "alice")
		want(t, list[0])
	})
	t.Run("flushUsage", func(t *testing.T) {
		if err := e.s.flushUsage(); err != nil {
			t.Fatal(err)
		}
		rec := e.appPwRecord(t, u.ID, ap.ID)
		want(t, rec.public())
	})
	t.Run("Close", func(t *testing.T) {
		e.clock.Advance(time.Hour)
		usedAt = e.clock.Now()
		if _, err := e.s.Authenticate(bg, Attempt{Protocol: IMAP, Username: "alice", Secret: secret,
			Source: addr("2001:db8::7"), Client: "Thunderbird"}); err != nil {
			t.Fatal(err)
		}
		e.reopen(t)
		rec := e.appPwRecord(t, u.ID, ap.ID)
		want(t, rec.public())
	})
}

func TestLastClientClipped(t *testing.T) {
	tests := []struct {
		name, client, want string
	}{
		{"short", "Thunderbird", "Thunderbird"},
		{"long ascii", strings.Repeat("x", 150), strings.Repeat("x", 100)},
		{"rune across the cut", strings.Repeat("x", 99) + "é and more", strings.Repeat("x", 99)},
		{"invalid utf8", "mail\xffapp", "mail?app"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			_, secret := e.addAppPassword(t, "alice")
			if _, err := e.s.Authenticate(bg, Attempt{Protocol: IMAP, Username: "alice", Secret: secret,
				Source: addr("192.0.2.1"), Client: tc.client}); err != nil {
				t.Fatal(err)
			}
			list, _ := e.s.ListAppPasswords(bg, "alice")
			if list[0].LastClient != tc.want {
				t.Fatalf("LastClient = %q, want %q", list[0].LastClient, tc.want)
			}
			e.s.FlushAudit()
			if ev := lastEvent(t, e); ev.Detail != tc.want {
				t.Fatalf("audit detail = %q, want %q", ev.Detail, tc.want)
			}
		})
	}
}
