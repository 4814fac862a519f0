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

// oldAppPassword is an app password in a store an older build left.
type oldAppPassword struct {
	name       string
	scopes     []Protocol // as the older schema stored them
	widened    bool       // made for everything: it gains the new scopes
	id, secret string
}

// checkWidened stores aps in a store of schema version (its third one
// revoked), opens it twice, and checks that exactly the widened ones
// gained the scopes gained, in that order, and that they log in for
// proto and the others do not.
func checkWidened(t *testing.T, version int, aps []*oldAppPassword, proto Protocol, gained ...Protocol) {
	t.Helper()
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	stored := map[string][]Protocol{}
	for _, ap := range aps {
		rec, secret := e.addAppPassword(t, "alice", ap.scopes...)
		ap.id, ap.secret = rec.ID, secret
		stored[ap.id] = ap.scopes
	}
	e.oldSchemaStore(t, version, u.ID, stored)
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
			if ap.widened {
				want = append(slices.Clone(ap.scopes), gained...)
			}
			if got := e.appPwRecord(t, u.ID, ap.id).Scopes; !slices.Equal(got, want) {
				t.Errorf("%s: scopes %v, want %v", ap.name, got, want)
			}
		}
	}
	for _, ap := range aps {
		if ap.name == "revoked" {
			continue
		}
		_, err := e.login("alice", ap.secret, proto, "192.0.2.1")
		if ap.widened && err != nil {
			t.Errorf("%s (made for everything) refused for %s after the migration: %v", ap.name, proto, err)
		}
		if !ap.widened && !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%s (limited) for %s after the migration: %v, want ErrUnauthorized", ap.name, proto, err)
		}
	}
}

// TestMigration_SMTPScope: opening a schema-1 store gives the smtp scope to
// the app passwords made for everything (in whatever order their scopes
// were stored, revoked ones too), and leaves the ones a person limited
// exactly as they were: an IMAP-only archiver does not start sending.
// Opening it again changes nothing. The store is then upgraded on to the
// current schema, so those made for everything have the activesync scope
// too.
func TestMigration_SMTPScope(t *testing.T) {
	everything := []Protocol{"imap", "pop3", "caldav", "carddav"} // schema 1's "everything", spelled out
	checkWidened(t, 1, []*oldAppPassword{
		{name: "phone", scopes: everything, widened: true},
		{name: "reordered", scopes: []Protocol{"carddav", "imap", "caldav", "pop3"}, widened: true},
		{name: "revoked", scopes: everything, widened: true},
		{name: "archiver", scopes: []Protocol{"imap"}},
		{name: "calendar", scopes: []Protocol{"caldav", "carddav"}},
		{name: "mail", scopes: []Protocol{"imap", "pop3"}},
	}, SMTP, SMTP, ActiveSync)
}

// TestMigration_ActiveSyncScope: opening a schema-2 store gives the
// activesync scope to the app passwords made for everything (schema 2's
// everything, smtp included, in any order, revoked ones too), and leaves
// the ones a person limited exactly as they were: a password made to read
// and send mail does not start serving a phone's ActiveSync.
func TestMigration_ActiveSyncScope(t *testing.T) {
	everything := []Protocol{"imap", "pop3", "smtp", "caldav", "carddav"} // schema 2's "everything", spelled out
	checkWidened(t, 2, []*oldAppPassword{
		{name: "phone", scopes: everything, widened: true},
		{name: "reordered", scopes: []Protocol{"smtp", "carddav", "imap", "caldav", "pop3"}, widened: true},
		{name: "revoked", scopes: everything, widened: true},
		{name: "schema 1 everything", scopes: []Protocol{"imap", "pop3", "caldav", "carddav"}},
		{name: "mail", scopes: []Protocol{"imap", "smtp"}},
		{name: "calendar", scopes: []Protocol{"caldav"}},
	}, ActiveSync, ActiveSync)
}
