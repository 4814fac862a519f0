package authstore

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
)

// schema1Store turns e's file into what a schema-1 build left behind: the
// meta version 1 and each app password's scopes as given (no smtp scope
// existed then), the rest of each record as this build wrote it, since
// the record's format did not change.
func (e *testEnv) schema1Store(t *testing.T, userID string, scopes map[string][]Protocol) {
	t.Helper()
	for id, s := range scopes {
		var rec map[string]any
		if err := json.Unmarshal(e.rawGet(t, bAppPw, appPwKey(userID, id)), &rec); err != nil {
			t.Fatal(err)
		}
		rec["scopes"] = s
		data, err := json.Marshal(rec)
		if err != nil {
			t.Fatal(err)
		}
		e.rawPut(t, bAppPw, appPwKey(userID, id), data)
	}
	e.rawPut(t, bMeta, "schema", []byte("1"))
}

// TestMigration_SMTPScope: opening a schema-1 store gives the smtp scope to
// the app passwords made for everything (in whatever order their scopes
// were stored, revoked ones too), and leaves the ones a person limited
// exactly as they were: an IMAP-only archiver does not start sending.
// Opening it again changes nothing.
func TestMigration_SMTPScope(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	everything := []Protocol{"imap", "pop3", "caldav", "carddav"} // schema 1's "everything", spelled out
	type made struct {
		name       string
		scopes     []Protocol // as schema 1 stored them
		gainsSMTP  bool
		id, secret string
	}
	aps := []*made{
		{name: "phone", scopes: everything, gainsSMTP: true},
		{name: "reordered", scopes: []Protocol{"carddav", "imap", "caldav", "pop3"}, gainsSMTP: true},
		{name: "revoked", scopes: everything, gainsSMTP: true},
		{name: "archiver", scopes: []Protocol{"imap"}},
		{name: "calendar", scopes: []Protocol{"caldav", "carddav"}},
		{name: "mail", scopes: []Protocol{"imap", "pop3"}},
	}
	stored := map[string][]Protocol{}
	for _, ap := range aps {
		rec, secret := e.addAppPassword(t, "alice", ap.scopes...)
		ap.id, ap.secret = rec.ID, secret
		stored[ap.id] = ap.scopes
	}
	e.schema1Store(t, u.ID, stored)
	if err := e.s.RevokeAppPassword(bg, "alice", aps[2].id); err != nil {
		t.Fatal(err)
	}

	for range 2 { // the second open finds schema 2 and changes nothing
		e.reopen(t)
		if v := string(e.rawGet(t, bMeta, "schema")); v != strconv.Itoa(schemaVersion) {
			t.Fatalf("schema after open = %q", v)
		}
		for _, ap := range aps {
			want := ap.scopes
			if ap.gainsSMTP {
				want = append(slices.Clone(ap.scopes), SMTP)
			}
			if got := e.appPwRecord(t, u.ID, ap.id).Scopes; !slices.Equal(got, want) {
				t.Errorf("%s: scopes %v, want %v", ap.name, got, want)
			}
		}
	}
	for _, ap := range aps[:2] {
		if _, err := e.login("alice", ap.secret, SMTP, "192.0.2.1"); err != nil {
			t.Errorf("%s (made for everything) refused for SMTP after the migration: %v", ap.name, err)
		}
	}
	for _, ap := range aps[3:] {
		if _, err := e.login("alice", ap.secret, SMTP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s (limited) for SMTP after the migration: %v, want ErrUnauthorized", ap.name, err)
		}
	}
}
