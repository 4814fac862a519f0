package authstore

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"
)

func TestAPITokens(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	tok, secret, err := e.s.CreateToken(bg, NewToken{Name: "ci", Role: RoleUser, User: "ALICE", Expires: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(secret, tokenPrefix) || len(secret) != tokenLen || tok.User != "alice" {
		t.Fatalf("token %+v %q", tok, secret)
	}
	got, err := e.s.VerifyToken(bg, secret)
	if err != nil || got.ID != tok.ID || got.Role != RoleUser {
		t.Fatalf("verify: %+v %v", got, err)
	}
	for _, bad := range []string{"", secret[:len(secret)-1] + "a", strings.ToUpper(secret), "pst_x", secret + "a"} {
		if bad == secret {
			continue
		}
		if _, err := e.s.VerifyToken(bg, bad); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("%q: %v", bad, err)
		}
	}
	// Only the HMAC is stored, and no listing carries it.
	list, err := e.s.ListTokens(bg)
	data, _ := json.Marshal(list)
	if err != nil || len(list) != 1 || strings.Contains(string(data), "digest") || strings.Contains(string(data), secret[4:]) {
		t.Fatalf("list: %s %v", data, err)
	}
	dump := dumpStore(t, e)
	if strings.Contains(dump, secret[4:]) {
		t.Error("the store holds the token in the clear")
	}
	e.clock.Advance(time.Hour)
	if _, err := e.s.VerifyToken(bg, secret); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("expired token: %v", err)
	}
	if err := e.s.RevokeToken(bg, tok.ID); err != nil {
		t.Fatal(err)
	}
	if err := e.s.RevokeToken(bg, tok.ID); !errors.Is(err, ErrNotFound) {
		t.Errorf("second revoke: %v", err)
	}
	for _, in := range []NewToken{{Name: "", Role: RoleAdmin}, {Name: "x", Role: "root"}, {Name: "x", Role: RoleUser},
		{Name: "x\n", Role: RoleAdmin}, {Name: "x", Role: RoleAdmin, Expires: e.clock.Now().Add(-time.Second)}} {
		if _, _, err := e.s.CreateToken(bg, in); !errors.Is(err, ErrInvalid) {
			t.Errorf("%+v: %v", in, err)
		}
	}
	if _, _, err := e.s.CreateToken(bg, NewToken{Name: "x", Role: RoleUser, User: "nobody"}); !errors.Is(err, ErrNotFound) {
		t.Errorf("token for a missing user: %v", err)
	}
}

// dumpStore is every key and value of the store, as a thief with the file
// would see it.
func dumpStore(t *testing.T, e *testEnv) string {
	t.Helper()
	var b strings.Builder
	err := e.s.db.View(func(tx kvTx) error {
		for _, bk := range allBuckets {
			if err := tx.Scan(bk, "", func(k string, v []byte) error {
				b.WriteString(k + "=" + string(v) + "\n")
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return b.String()
}

func TestWebSessions(t *testing.T) {
	e := newTestStore(t)
	ws := WebSession{User: "alice", State: "signed_in", CSRF: "c", Created: e.clock.Now()}
	if err := e.s.PutWebSession(bg, "id-1", ws, ""); err != nil {
		t.Fatal(err)
	}
	got, err := e.s.GetWebSession(bg, "id-1")
	if err != nil || got.User != "alice" || got.Written.IsZero() {
		t.Fatalf("get: %+v %v", got, err)
	}
	if strings.Contains(dumpStore(t, e), "id-1") {
		t.Error("the session id is stored in the clear")
	}
	// Rotation: the new id exists and the old one is gone, in one write.
	if err := e.s.PutWebSession(bg, "id-2", ws, "id-1"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetWebSession(bg, "id-1"); !errors.Is(err, ErrNotFound) {
		t.Errorf("rotated id: %v", err)
	}
	e.s.PutWebSession(bg, "id-3", ws, "")
	e.s.PutWebSession(bg, "bob-1", WebSession{User: "bob", Created: e.clock.Now()}, "")
	old := WebSession{User: "carol", Created: e.clock.Now().Add(-13 * time.Hour)}
	e.s.PutWebSession(bg, "carol-1", old, "")
	n, err := e.s.EndWebSessions(bg, "alice", "id-3", e.clock.Now().Add(-12*time.Hour))
	if err != nil || n != 2 { // alice's id-2 and carol's expired one
		t.Fatalf("ended %d: %v", n, err)
	}
	for id, want := range map[string]bool{"id-2": false, "id-3": true, "bob-1": true, "carol-1": false} {
		if _, err := e.s.GetWebSession(bg, id); (err == nil) != want {
			t.Errorf("%s: %v", id, err)
		}
	}
	at := e.clock.Now().Add(time.Minute)
	if err := e.s.SaveWebSessionActivity(bg, map[string]time.Time{"id-3": at, "gone": at}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.s.GetWebSession(bg, "id-3"); !got.Seen.Equal(at) {
		t.Errorf("seen %v, want %v", got.Seen, at)
	}
	if _, err := e.s.GetWebSession(bg, "gone"); !errors.Is(err, ErrNotFound) {
		t.Errorf("saving activity created a session: %v", err)
	}
	if err := e.s.DeleteWebSession(bg, "id-3"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.s.GetWebSession(bg, "id-3"); !errors.Is(err, ErrNotFound) {
		t.Errorf("deleted: %v", err)
	}
}

func TestQueryAudit(t *testing.T) {
	e := newTestStore(t)
	for _, name := range []string{"alice", "bob", "carol"} {
		e.addUser(t, name)
		e.clock.Advance(time.Minute)
	}
	e.s.SetDisabled(bg, "bob", true)
	all, next, err := e.s.QueryAudit(bg, AuditFilter{}, 0)
	if err != nil || len(all) != 4 || next != 0 || all[0].Kind != "user.disable" {
		t.Fatalf("all: %d %d %v", len(all), next, err)
	}
	page, next, _ := e.s.QueryAudit(bg, AuditFilter{Kind: "user."}, 3)
	if len(page) != 3 || next == 0 {
		t.Fatalf("first page: %d next %d", len(page), next)
	}
	rest, next2, _ := e.s.QueryAudit(bg, AuditFilter{Kind: "user.", Before: next}, 3)
	if len(rest) != 1 || next2 != 0 || rest[0].Seq >= page[2].Seq {
		t.Fatalf("second page: %+v next %d", rest, next2)
	}
	bobs, _, _ := e.s.QueryAudit(bg, AuditFilter{User: "bob"}, 10)
	if len(bobs) != 2 {
		t.Errorf("bob: %d", len(bobs))
	}
	since, _, _ := e.s.QueryAudit(bg, AuditFilter{Since: epoch.Add(time.Minute), Until: epoch.Add(2 * time.Minute)}, 10)
	if len(since) != 1 || since[0].User != "bob" {
		t.Errorf("time range: %+v", since)
	}
	var exported []Event
	e.s.ExportAudit(bg, AuditFilter{Kind: "user.create"}, func(ev Event) error { exported = append(exported, ev); return nil })
	if len(exported) != 3 || exported[0].User != "alice" {
		t.Errorf("export: %+v", exported)
	}
	if err := e.s.Record(WithActor(bg, Actor{Name: "admin:root"}), Event{Kind: "session.end", User: "alice"}); err != nil {
		t.Fatal(err)
	}
	last, _, _ := e.s.QueryAudit(bg, AuditFilter{}, 1)
	if last[0].Kind != "session.end" || last[0].Actor != "admin:root" {
		t.Errorf("recorded: %+v", last[0])
	}
	if _, err := e.s.VerifyAudit(bg); err != nil {
		t.Error(err)
	}
	for _, c := range []string{"", "12", "x", "0"} {
		n, ok := ParseCursor(c)
		if ok != (c == "" || c == "12") || (ok && FormatCursor(n) != c) {
			t.Errorf("cursor %q: %d %v", c, n, ok)
		}
	}
}

func TestUpdateUser(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	before := auditCount(t, e)
	name, role, off := "Alice A.", RoleAdmin, true
	u, err := e.s.UpdateUser(bg, "alice", UserUpdate{Display: &name, Role: &role, Disabled: &off})
	if err != nil || u.Display != name || u.Role != RoleAdmin || !u.Disabled {
		t.Fatalf("%+v %v", u, err)
	}
	if n := auditCount(t, e) - before; n != 1 {
		t.Errorf("%d audit events, want 1", n)
	}
	if revs := e.revs.take(); len(revs) != 1 || revs[0].Username != "alice" {
		t.Errorf("disabling ended %+v", revs)
	}
	bad := "x\x00"
	if _, err := e.s.UpdateUser(bg, "alice", UserUpdate{Email: &bad}); !errors.Is(err, ErrInvalid) {
		t.Errorf("control character: %v", err)
	}
}

// BenchmarkVerifyToken: one HMAC and one read, like an app password.
func BenchmarkVerifyToken(b *testing.B) {
	e := newTestStore(b)
	_, secret, err := e.s.CreateToken(bg, NewToken{Name: "ci", Role: RoleAdmin})
	if err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		if _, err := e.s.VerifyToken(bg, secret); err != nil {
			b.Fatal(err)
		}
	}
}

// TestDeleteUserDeletesTokens: deleting a user deletes the API tokens that
// act as them in the same transaction, audited, so none lingers in the store
// or serves a new account created under the same name; other users' tokens
// stay.
func TestDeleteUserDeletesTokens(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	var aliceSecrets []string
	var aliceIDs []string
	for _, nt := range []NewToken{{Name: "ci", Role: RoleUser, User: "alice"}, {Name: "ops", Role: RoleAdmin, User: "alice"}} {
		tok, secret, err := e.s.CreateToken(bg, nt)
		if err != nil {
			t.Fatal(err)
		}
		aliceSecrets, aliceIDs = append(aliceSecrets, secret), append(aliceIDs, tok.ID)
	}
	bobTok, bobSecret, err := e.s.CreateToken(bg, NewToken{Name: "bob-ci", Role: RoleUser, User: "bob"})
	if err != nil {
		t.Fatal(err)
	}
	before, _ := e.s.AuditTail(bg, 1000)
	if err := e.s.DeleteUser(bg, "alice"); err != nil {
		t.Fatal(err)
	}
	list, err := e.s.ListTokens(bg)
	if err != nil || len(list) != 1 || list[0].ID != bobTok.ID {
		t.Fatalf("tokens after deleting alice: %+v %v", list, err)
	}
	for _, id := range aliceIDs {
		if e.rawGet(t, bTokens, "i/"+id) != nil {
			t.Errorf("token %s: id entry left behind", id)
		}
	}
	all, _ := e.s.AuditTail(bg, 1000)
	revoked := 0
	for _, ev := range all[len(before):] {
		if ev.Kind == "token.revoke" && ev.User == "alice" {
			revoked++
		}
	}
	if revoked != 2 {
		t.Errorf("%d token.revoke events for alice, want 2: %+v", revoked, all)
	}
	e.addUser(t, "alice")
	for _, secret := range aliceSecrets {
		if _, err := e.s.VerifyToken(bg, secret); !errors.Is(err, ErrUnauthorized) {
			t.Errorf("an old token of alice works for the new alice: %v", err)
		}
	}
	if _, err := e.s.VerifyToken(bg, bobSecret); err != nil {
		t.Errorf("bob's token: %v", err)
	}
}
