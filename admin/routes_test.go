package admin

import (
	"bytes"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

type fakeReady struct {
	ok      bool
	failing []string
}

func (f *fakeReady) Ready() (bool, []string) { return f.ok, f.failing }

// step is one call of the route scenario and the audit events it must
// write: exactly these kinds, each with an actor (for changes), the user
// and the source, and no secret from any answer.
type step struct {
	who    *client
	method string
	path   func() string
	body   any
	want   int
	kinds  []string
	after  func(r *resp)
}

// TestEveryRoute drives every route of the table to a successful answer
// (checked against the OpenAPI document by the client) and checks W5 on
// the way: each action writes exactly one audit event with actor, user and
// source, and no secret.
func TestEveryRoute(t *testing.T) {
	ready := &fakeReady{ok: true}
	e := newEnv(t, func(_ *authstore.Options, c *Config) {
		reg := prometheus.NewRegistry()
		reg.MustRegister(collectors.NewGoCollector())
		c.Metrics, c.Ready = reg, ready
	})
	e.user("root", "root-password", authstore.RoleAdmin)
	e.user("alice", "alice-password", "")
	rootTOTP := e.totpUser("root")
	e.user("carol", "carol-password", "")
	e.totpUser("carol")
	ops := e.tokenClient(e.token("ops", authstore.RoleAdmin, ""))
	anon := e.client()
	alice := e.client()
	root := e.client()
	actors := map[*client]string{ops: "token:ops", alice: "self:alice", root: "admin:root"}
	var secrets []string
	var appPwID, tokenID, totpSecret string
	e.live.add(t, []proxy.SessionInfo{
		{ID: "s1", Username: "bob", CredentialID: "password", Protocol: authstore.IMAP, Remote: mustAddr("198.51.100.7:50000"), Start: epoch},
		{ID: "s2", Username: "bob", CredentialID: "password", Protocol: authstore.POP3, Remote: mustAddr("198.51.100.7:50001"), Start: epoch},
		{ID: "s3", Username: "bob", CredentialID: "password", Protocol: authstore.IMAP, Remote: mustAddr("198.51.100.8:50000"), Start: epoch},
	}...)
	p := func(s string) func() string { return func() string { return s } }
	keep := func(field string) func(r *resp) {
		return func(r *resp) {
			var m map[string]any
			json.Unmarshal(r.body, &m)
			if s, ok := m[field].(string); ok {
				secrets = append(secrets, strings.ReplaceAll(s, " ", ""), s)
			}
		}
	}
	steps := []step{
		{who: anon, method: "GET", path: p("/healthz"), want: 200},
		{who: anon, method: "GET", path: p("/readyz"), want: 200},
		{who: anon, method: "GET", path: p("/metrics"), want: 200},
		{who: anon, method: "GET", path: p("/api/v1/openapi.json"), want: 200},
		// Admin work with the operator's token.
		{who: ops, method: "POST", path: p("/api/v1/users"), body: map[string]any{"username": "Bob", "display_name": "Bob", "role": "user"},
			want: 200, kinds: []string{"user.create"}, after: keep("password")},
		{who: ops, method: "GET", path: p("/api/v1/users"), want: 200},
		{who: ops, method: "GET", path: p("/api/v1/users/BOB"), want: 200},
		{who: ops, method: "PATCH", path: p("/api/v1/users/bob"), body: map[string]any{"email": "bob@example.org", "disabled": false}, want: 200, kinds: []string{"user.update"}},
		{who: ops, method: "PUT", path: p("/api/v1/users/bob/password"), body: map[string]any{"password": "bob-password-2", "revoke_app_passwords": true}, want: 204, kinds: []string{"user.password"}},
		{who: ops, method: "PUT", path: p("/api/v1/users/bob/upstream-password"), body: map[string]any{"password": "bob-upstream-secret"}, want: 204,
			kinds: []string{"user.upstream_password"}, after: func(*resp) { secrets = append(secrets, "bob-upstream-secret") }},
		{who: ops, method: "DELETE", path: p("/api/v1/users/bob/upstream-password"), want: 204, kinds: []string{"user.upstream_password"}},
		{who: ops, method: "POST", path: p("/api/v1/users/bob/app-passwords"), body: map[string]any{"name": "laptop", "scopes": []string{"imap"}},
			want: 200, kinds: []string{"apppw.create"}, after: func(r *resp) {
				var out api.NewAppPasswordResponse
				r.decode(t, &out)
				appPwID = out.AppPassword.ID
				secrets = append(secrets, out.Secret, strings.ReplaceAll(out.Secret, " ", ""))
			}},
		{who: ops, method: "GET", path: p("/api/v1/users/bob/app-passwords"), want: 200},
		{who: ops, method: "GET", path: p("/api/v1/sessions?user=bob"), want: 200, after: func(r *resp) {
			var out api.SessionList
			r.decode(t, &out)
			if len(out.Sessions) != 3 || out.Sessions[0].Remote != "198.51.100.7:50000" {
				t.Errorf("sessions: %s", r.body)
			}
		}},
		{who: ops, method: "DELETE", path: p("/api/v1/sessions/s1"), want: 204, kinds: []string{"session.end"}},
		{who: ops, method: "DELETE", path: p("/api/v1/users/bob/sessions"), want: 200, kinds: []string{"session.end_all"}, after: func(r *resp) {
			if !strings.Contains(string(r.body), `"ended":2`) {
				t.Errorf("ended: %s", r.body)
			}
		}},
		{who: ops, method: "DELETE", path: func() string { return "/api/v1/users/bob/app-passwords/" + appPwID }, want: 204, kinds: []string{"apppw.revoke"}},
		{who: ops, method: "GET", path: p("/api/v1/users/bob/mfa"), want: 200},
		{who: ops, method: "POST", path: p("/api/v1/users/bob/mfa/reset"), want: 204, kinds: []string{"mfa.reset"}},
		{who: ops, method: "GET", path: p("/api/v1/policy"), want: 200},
		{who: ops, method: "PUT", path: p("/api/v1/policy"), body: map[string]any{"mfa_required": false}, want: 200, kinds: []string{"policy.mfa"}},
		{who: ops, method: "POST", path: p("/api/v1/tokens"), body: map[string]any{"name": "ci", "role": "user", "user": "alice"},
			want: 200, kinds: []string{"token.create"}, after: func(r *resp) {
				var out api.NewTokenResponse
				r.decode(t, &out)
				tokenID = out.Token.ID
				secrets = append(secrets, out.Secret)
				if !strings.HasPrefix(out.Secret, "pst_") || len(out.Secret) != 56 {
					t.Errorf("token secret %q", out.Secret)
				}
			}},
		{who: ops, method: "GET", path: p("/api/v1/tokens"), want: 200},
		{who: ops, method: "DELETE", path: func() string { return "/api/v1/tokens/" + tokenID }, want: 204, kinds: []string{"token.revoke"}},
		{who: ops, method: "DELETE", path: p("/api/v1/users/bob"), want: 204, kinds: []string{"user.delete"}},
		// Alice's self-service from her browser, after one failed try.
		{who: e.client(), method: "POST", path: p("/api/v1/session"), body: map[string]string{"username": "Alice", "password": "wrong-password"}, want: 401, kinds: []string{"login"}},
		{who: alice, method: "POST", path: p("/api/v1/session"), body: map[string]string{"username": "ALICE", "password": "alice-password"}, want: 200, kinds: []string{"login"}},
		{who: alice, method: "GET", path: p("/api/v1/me"), want: 200},
		{who: alice, method: "GET", path: p("/api/v1/me/mfa"), want: 200},
		{who: alice, method: "POST", path: p("/api/v1/me/mfa/totp"), want: 200, kinds: []string{"mfa.enroll_begin"}, after: func(r *resp) {
			var out api.TOTPEnrollment
			r.decode(t, &out)
			totpSecret = out.Secret
			secrets = append(secrets, out.Secret)
		}},
		{who: alice, method: "GET", path: p("/api/v1/me/mfa/totp/qr.png"), want: 200},
		{who: alice, method: "POST", path: p("/api/v1/me/mfa/totp/confirm"), body: func() any { return map[string]string{"code": e.code(totpSecret)} },
			want: 200, kinds: []string{"mfa.enable"}, after: keepCodes(&secrets)},
		{who: alice, method: "POST", path: p("/api/v1/me/backup-codes"), want: 200, kinds: []string{"mfa.backup_codes"}, after: keepCodes(&secrets)},
		{who: alice, method: "POST", path: p("/api/v1/me/app-passwords"), body: map[string]any{"name": "phone"}, want: 200, kinds: []string{"apppw.create"},
			after: func(r *resp) {
				var out api.NewAppPasswordResponse
				r.decode(t, &out)
				appPwID = out.AppPassword.ID
				secrets = append(secrets, out.Secret)
			}},
		{who: alice, method: "GET", path: p("/api/v1/me/app-passwords"), want: 200},
		{who: alice, method: "DELETE", path: func() string { return "/api/v1/me/app-passwords/" + appPwID }, want: 204, kinds: []string{"apppw.revoke"}},
		{who: alice, method: "PUT", path: p("/api/v1/me/password"), body: map[string]any{"current_password": "alice-password", "new_password": "alice-password-2"},
			want: 204, kinds: []string{"login", "user.password"}},
		{who: alice, method: "POST", path: p("/api/v1/session/reauth"), body: func() any { return map[string]string{"code": e.code(totpSecret)} }, want: 200, kinds: []string{"second_factor"}},
		{who: alice, method: "GET", path: p("/api/v1/me/activity?limit=3"), want: 200, after: func(r *resp) {
			var out api.EventList
			r.decode(t, &out)
			if len(out.Events) != 3 || out.NextCursor == "" || out.Events[0].User != "alice" {
				t.Errorf("activity: %s", r.body)
			}
		}},
		// Root, an admin, signs in with two-step on and acts through the console.
		{who: root, method: "POST", path: p("/api/v1/session"), body: map[string]string{"username": "root", "password": "root-password"}, want: 200, kinds: []string{"login"}},
		{who: root, method: "POST", path: p("/api/v1/session/second-factor"), body: func() any { return map[string]string{"code": e.code(rootTOTP)} }, want: 200, kinds: []string{"second_factor"}},
		{who: root, method: "POST", path: p("/api/v1/users/alice/backup-code"), body: map[string]any{"ttl": "1d"}, want: 200, kinds: []string{"mfa.admin_code"}, after: keep("code")},
		{who: alice, method: "DELETE", path: p("/api/v1/me/mfa"), want: 204, kinds: []string{"mfa.disable"}},
		{who: root, method: "DELETE", path: p("/api/v1/users/carol/mfa"), want: 204, kinds: []string{"mfa.disable"}},
		{who: root, method: "GET", path: p("/api/v1/audit?user=alice&kind=mfa.&limit=2"), want: 200, after: func(r *resp) {
			var out api.EventList
			r.decode(t, &out)
			if len(out.Events) != 2 || out.Events[0].Kind != "mfa.disable" || out.NextCursor == "" {
				t.Errorf("audit: %s", r.body)
			}
		}},
		{who: root, method: "GET", path: p("/api/v1/audit/export?kind=token."), want: 200, after: func(r *resp) {
			if n := strings.Count(string(r.body), "\n"); n != 3 || r.header.Get("Content-Type") != "application/x-ndjson" {
				t.Errorf("export: %d lines %q", n, r.body)
			}
		}},
		{who: root, method: "POST", path: p("/api/v1/audit/verify"), want: 200, after: func(r *resp) {
			if !strings.Contains(string(r.body), `"ok":true`) {
				t.Errorf("verify: %s", r.body)
			}
		}},
		{who: root, method: "POST", path: p("/api/v1/store/backup"), body: map[string]any{"recipients": []string{"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"}},
			want: 200, kinds: []string{"store.backup"}, after: func(r *resp) {
				if !bytes.HasPrefix(r.body, []byte("age-encryption.org/v1\n")) || r.header.Get(api.BackupStatus) != "ok" {
					t.Errorf("backup: %q… status %q", r.body[:min(40, len(r.body))], r.header.Get(api.BackupStatus))
				}
			}},
		{who: alice, method: "DELETE", path: p("/api/v1/me/mfa"), want: 409}, // already off
		{who: alice, method: "DELETE", path: p("/api/v1/session"), want: 204, kinds: []string{"web.signout"}},
	}
	for i, s := range steps {
		before := e.auditCount()
		body := s.body
		f, usesCode := body.(func() any)
		if usesCode {
			body = f()
		}
		r := s.who.do(s.method, s.path(), body)
		if r.code != s.want {
			t.Fatalf("step %d %s %s: %d %s, want %d", i, s.method, s.path(), r.code, r.body, s.want)
		}
		if s.after != nil {
			s.after(r)
		}
		checkEvents(t, s, actors[s.who], e.eventsSince(before), secrets)
		if usesCode { // the next code must be of a later step
			e.clock.Advance(30 * time.Second)
		}
	}
	for _, rt := range e.srv.routes {
		if !e.hits[rt.Method+" "+rt.Path] {
			t.Errorf("%s %s never answered 2xx", rt.Method, rt.Path)
		}
	}
}

func keepCodes(secrets *[]string) func(r *resp) {
	return func(r *resp) {
		var out struct {
			Codes []string `json:"backup_codes"`
		}
		json.Unmarshal(r.body, &out)
		for _, c := range out.Codes {
			*secrets = append(*secrets, c, strings.ReplaceAll(c, " ", ""))
		}
	}
}

func checkEvents(t *testing.T, s step, actor string, evs []authstore.Event, secrets []string) {
	t.Helper()
	if len(evs) != len(s.kinds) {
		t.Errorf("%s %s: %d events, want %v:%s", s.method, s.path(), len(evs), s.kinds, fmtEvents(evs))
		return
	}
	// Sign-in outcomes are written in batches, so they may land after the
	// change they preceded.
	slices.SortFunc(evs, func(a, b authstore.Event) int { return strings.Compare(a.Kind, b.Kind) })
	for i, ev := range evs {
		if ev.Kind != s.kinds[i] {
			t.Errorf("%s %s: event %q, want %q", s.method, s.path(), ev.Kind, s.kinds[i])
		}
		if ev.Source != "192.0.2.10" {
			t.Errorf("%s %s: %s event source %q", s.method, s.path(), ev.Kind, ev.Source)
		}
		if ev.User == "" && ev.Kind != "policy.mfa" && ev.Kind != "store.backup" { // organisation-wide events
			t.Errorf("%s %s: %s event without a user", s.method, s.path(), ev.Kind)
		}
		if (ev.Kind == "login" || ev.Kind == "second_factor") && (ev.Protocol != authstore.Web || ev.Result == "" || (ev.Reason == "" && ev.Result != "denied")) {
			t.Errorf("%s %s: sign-in event lacks protocol, result or reason: %+v", s.method, s.path(), ev)
		}
		if ev.Kind != "login" && ev.Kind != "second_factor" && ev.Actor != actor {
			t.Errorf("%s %s: %s event actor %q, want %q", s.method, s.path(), ev.Kind, ev.Actor, actor)
		}
		data, _ := json.Marshal(ev)
		for _, sec := range secrets {
			if sec != "" && strings.Contains(string(data), sec) {
				t.Errorf("%s event carries a secret: %s", ev.Kind, data)
			}
		}
	}
}
