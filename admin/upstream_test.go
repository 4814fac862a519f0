package admin

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// TestUpstreamPasswordRoutes: an admin sets a user's stored upstream
// password once and clears it; the account then says only whether one is
// set. No answer, audit event or log line carries the password, and a
// plain user (session or token) gets 403.
func TestUpstreamPasswordRoutes(t *testing.T) {
	logs := &testpeer.LockedBuffer{}
	e := newEnv(t, func(_ *authstore.Options, c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	})
	e.user("alice", "alice-password", "")
	e.user("bob", "bob-password", "")
	const secret = "dovecot-side-Secret-42"
	path := "/api/v1/users/alice/upstream-password"
	body := map[string]string{"password": secret}
	before := e.auditCount()

	bob := e.client()
	bob.signIn("bob", "bob-password", "")
	for name, c := range map[string]*client{"session": bob, "token": e.tokenClient(e.token("bobs", authstore.RoleUser, "bob"))} {
		for _, method := range []string{"PUT", "DELETE"} {
			if r := c.do(method, path, body); r.code != 403 || r.errCode() != "forbidden" {
				t.Errorf("plain user's %s %s: %d %s, want 403 forbidden", name, method, r.code, r.body)
			}
		}
	}

	ops := e.tokenClient(e.token("ops", authstore.RoleAdmin, ""))
	var answers []string
	answers = append(answers, string(ops.must(204, "PUT", "/api/v1/users/ALICE/upstream-password", body).body))
	if got, err := e.st.UpstreamPassword(bg, "alice"); err != nil || got != secret {
		t.Fatalf("stored upstream password %q, %v", got, err)
	}
	var u authstore.User
	r := ops.must(200, "GET", "/api/v1/users/alice", nil)
	r.decode(t, &u)
	answers = append(answers, string(r.body), string(ops.must(200, "GET", "/api/v1/users", nil).body))
	if !u.HasUpstreamPassword {
		t.Errorf("the account does not say an upstream password is set: %s", r.body)
	}
	if r := ops.do("PUT", path, map[string]string{"password": "two\r\nlines"}); r.code != 422 {
		t.Errorf("a password with CR LF: %d %s, want 422", r.code, r.body)
	}
	if r := ops.do("PUT", "/api/v1/users/nobody/upstream-password", body); r.code != 404 {
		t.Errorf("unknown user: %d %s, want 404", r.code, r.body)
	}
	answers = append(answers, string(ops.must(204, "DELETE", path, nil).body))
	ops.must(200, "GET", "/api/v1/users/alice", nil).decode(t, &u)
	if u.HasUpstreamPassword {
		t.Error("still set after DELETE")
	}

	evs := e.eventsSince(before)
	kinds := 0
	for _, ev := range evs {
		if ev.Kind == "user.upstream_password" && ev.User == "alice" && ev.Actor == "token:ops" {
			kinds++
		}
	}
	if kinds != 2 {
		t.Errorf("audit: %d user.upstream_password events by token:ops, want 2 (set, clear)", kinds)
	}
	audit, _ := json.Marshal(evs)
	for what, text := range map[string]string{"answers": strings.Join(answers, "\n"), "audit": string(audit), "logs": logs.String()} {
		if strings.Contains(text, secret) {
			t.Errorf("the upstream password appears in the %s:\n%s", what, text)
		}
	}
}

// TestW1_UpstreamPasswordNeedsReauth: an admin's browser past the
// re-verification window may not set or clear a stored upstream password.
func TestW1_UpstreamPasswordNeedsReauth(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  int
	}{{"4:59", 4*time.Minute + 59*time.Second, 204}, {"5:01", 5*time.Minute + time.Second, 403}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.user("root", "root-password", authstore.RoleAdmin)
			e.user("alice", "alice-password", "")
			c := e.client()
			c.signIn("root", "root-password", "")
			e.clock.Advance(tc.after)
			for _, method := range []string{"PUT", "DELETE"} {
				r := c.do(method, "/api/v1/users/alice/upstream-password", map[string]string{"password": "upstream"})
				if r.code != tc.want || (tc.want == 403 && r.errCode() != "reauth_required") {
					t.Errorf("%s: %d %s, want %d", method, r.code, r.body, tc.want)
				}
			}
		})
	}
}
