package authstore

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"
	"testing"
)

// oldSchemaStore turns e's file into what an older build left behind: the
// meta version and each app password's scopes as given (a scope that did
// not exist then is not among them), the rest of each record as this
// build wrote it, since the record's format did not change.
func (e *testEnv) oldSchemaStore(t *testing.T, version int, userID string, scopes map[string][]Protocol) {
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
	e.rawPut(t, bMeta, "schema", []byte(strconv.Itoa(version)))
}

// TestMigration_SMTPScope: opening a schema-1 store gives the smtp scope to
// the app passwords made for everything (in whatever order their scopes
// were stored, revoked ones too), and leaves the ones a person limited
// exactly as they were: an IMAP-only archiver does not start sending.
// Opening it again changes nothing. The store is then upgraded on to the
// current schema, so those made for everything have the activesync scope
// too.
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
	e.oldSchemaStore(t, 1, u.ID, stored)
	if err := e.s.RevokeAppPassword(bg, "alice", aps[2].id); err != nil {
		t.Fatal(err)
	}

	for range 2 { // the second open finds the current schema and changes nothing
		e.reopen(t)
		if v := string(e.rawGet(t, bMeta, "schema")); v != strconv.Itoa(schemaVersion) {
			t.Fatalf("schema after open = %q", v)
		}
		for _, ap := range aps {
			want := ap.scopes
			if ap.gainsSMTP {
				want = append(slices.Clone(ap.scopes), SMTP, ActiveSync)
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

// TestMigration_ActiveSyncScope: opening a schema-2 store gives the
// activesync scope to the app passwords made for everything (schema 2's
// everything, smtp included, in any order, revoked ones too), and leaves
// the ones a person limited exactly as they were: a password made to read
// and send mail does not start serving a phone's ActiveSync.
func TestMigration_ActiveSyncScope(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	everything := []Protocol{"imap", "pop3", "smtp", "caldav", "carddav"} // schema 2's "everything", spelled out
	aps := []struct {
		name       string
		scopes     []Protocol // as schema 2 stored them
		gains      bool
		id, secret string
	}{
		{name: "phone", scopes: everything, gains: true},
		{name: "reordered", scopes: []Protocol{"smtp", "carddav", "imap", "caldav", "pop3"}, gains: true},
		{name: "revoked", scopes: everything, gains: true},
		{name: "schema 1 everything", scopes: []Protocol{"imap", "pop3", "caldav", "carddav"}},
		{name: "mail", scopes: []Protocol{"imap", "smtp"}},
		{name: "calendar", scopes: []Protocol{"caldav"}},
	}
	stored := map[string][]Protocol{}
	for i := range aps {
		rec, secret := e.addAppPassword(t, "alice", aps[i].scopes...)
		aps[i].id, aps[i].secret = rec.ID, secret
		stored[rec.ID] = aps[i].scopes
	}
	e.oldSchemaStore(t, 2, u.ID, stored)
	if err := e.s.RevokeAppPassword(bg, "alice", aps[2].id); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds schema 3 and changes nothing
		e.reopen(t)
		if v := string(e.rawGet(t, bMeta, "schema")); v != "3" {
			t.Fatalf("schema after open = %q", v)
		}
		for _, ap := range aps {
			want := ap.scopes
			if ap.gains {
				want = append(slices.Clone(ap.scopes), ActiveSync)
			}
			if got := e.appPwRecord(t, u.ID, ap.id).Scopes; !slices.Equal(got, want) {
				t.Errorf("%s: scopes %v, want %v", ap.name, got, want)
			}
		}
	}
	for _, ap := range aps[:2] {
		if _, err := e.login("alice", ap.secret, ActiveSync, "192.0.2.1"); err != nil {
			t.Errorf("%s (made for everything) refused for ActiveSync after the migration: %v", ap.name, err)
		}
	}
	for _, ap := range aps[3:] {
		if _, err := e.login("alice", ap.secret, ActiveSync, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s (limited) for ActiveSync after the migration: %v, want ErrUnauthorized", ap.name, err)
		}
	}
}
