package admin

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// TestW1_ReauthWindow: with a frozen clock, a security change 4:59 after
// the last verification goes through and one at 5:01 is refused with
// reauth_required, until the person re-verifies.
func TestW1_ReauthWindow(t *testing.T) {
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  int
	}{{"4:59", 4*time.Minute + 59*time.Second, 200}, {"5:01", 5*time.Minute + time.Second, 403}} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			e.user("alice", "alice-password", "")
			c := e.client()
			c.signIn("alice", "alice-password", "")
			e.clock.Advance(tc.after)
			r := c.do("POST", "/api/v1/me/app-passwords", map[string]string{"name": "phone"})
			if r.code != tc.want {
				t.Fatalf("got %d %s, want %d", r.code, r.body, tc.want)
			}
			if tc.want == 403 && r.errCode() != "reauth_required" {
				t.Fatalf("code %q", r.errCode())
			}
		})
	}
	t.Run("reauth with a code, then 4:59 and 5:01 again", func(t *testing.T) {
		e := newEnv(t)
		e.user("alice", "alice-password", "")
		secret := e.totpUser("alice")
		c := e.client()
		c.signIn("alice", "alice-password", secret)
		e.clock.Advance(6 * time.Minute)
		c.must(403, "POST", "/api/v1/me/backup-codes", nil)
		var ra api.ReauthResponse
		c.must(200, "POST", "/api/v1/session/reauth", map[string]string{"code": e.code(secret)}).decode(t, &ra)
		if want := e.clock.Now().Add(5 * time.Minute); !ra.ReauthUntil.Equal(want) {
			t.Errorf("reauth_until %s, want %s", ra.ReauthUntil, want)
		}
		e.clock.Advance(4*time.Minute + 59*time.Second)
		c.must(200, "POST", "/api/v1/me/backup-codes", nil)
		e.clock.Advance(2 * time.Second)
		c.must(403, "POST", "/api/v1/me/backup-codes", nil)
		// A wrong code, or a password where a code is due, does not open it.
		c.must(403, "POST", "/api/v1/session/reauth", map[string]string{"code": "000000"})
		c.must(403, "POST", "/api/v1/session/reauth", map[string]string{"password": "alice-password"})
		c.must(403, "POST", "/api/v1/me/backup-codes", nil)
	})
	t.Run("admin token and control socket skip it, user token cannot", func(t *testing.T) {
		e := newEnv(t)
		e.user("alice", "alice-password", "")
		e.tokenClient(e.token("ops", authstore.RoleAdmin, "")).must(200, "POST", "/api/v1/users/alice/app-passwords", map[string]string{"name": "x"})
		r := e.tokenClient(e.token("own", authstore.RoleUser, "alice")).do("POST", "/api/v1/me/app-passwords", map[string]string{"name": "x"})
		if r.code != 403 || r.errCode() != "reauth_required" {
			t.Errorf("user token: %d %s", r.code, r.body)
		}
	})
}

// TestW2_HalfDoneSignIn: after the password of a user with a second
// factor, the session is no credential: every other route answers 401, and
// the second step needs the first.
func TestW2_HalfDoneSignIn(t *testing.T) {
	e := newEnv(t)
	e.user("root", "root-password", authstore.RoleAdmin)
	secret := e.totpUser("root")
	c := e.client()
	var st api.SignInResponse
	c.must(200, "POST", "/api/v1/session", map[string]string{"username": "root", "password": "root-password"}).decode(t, &st)
	if st.State != stateSecondFactor || c.cookie == "" {
		t.Fatalf("state %q cookie %q", st.State, c.cookie)
	}
	expectEach(t, "half-done", c, routesWith(e.srv, accessBrowser, accessEnroll, accessSelf, accessAdmin), http.StatusUnauthorized, "unauthenticated")
	c.must(401, "POST", "/api/v1/me/app-passwords", map[string]string{"name": "x"})
	// Steps in order: no second step without a first.
	fresh := e.client()
	fresh.must(401, "POST", "/api/v1/session/second-factor", map[string]string{"code": e.code(secret)})
	// A full session cannot take the second step again.
	c.must(200, "POST", "/api/v1/session/second-factor", map[string]string{"code": e.code(secret)})
	c.must(200, "GET", "/api/v1/users", nil)
	e.clock.Advance(30 * time.Second)
	c.must(401, "POST", "/api/v1/session/second-factor", map[string]string{"code": e.code(secret)})
	// A half-done sign-in ends after 10 minutes.
	late := e.client()
	late.must(200, "POST", "/api/v1/session", map[string]string{"username": "root", "password": "root-password"})
	e.clock.Advance(10 * time.Minute)
	late.must(401, "POST", "/api/v1/session/second-factor", map[string]string{"code": e.code(secret)})
}

func setCookie(t *testing.T, r *resp) *http.Cookie {
	t.Helper()
	for _, ck := range (&http.Response{Header: r.header}).Cookies() {
		if ck.Name == cookieName {
			return ck
		}
	}
	t.Fatal("no session cookie set")
	return nil
}

// TestW3_SessionCookie: attributes, rotation at every sign-in step and at
// re-verification (old ids stop working), replay after sign-out, idle and
// absolute timeouts.
func TestW3_SessionCookie(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	secret := e.totpUser("alice")
	c := e.client()
	r := c.must(200, "POST", "/api/v1/session", map[string]string{"username": "alice", "password": "alice-password"})
	ck := setCookie(t, r)
	raw := r.header.Get("Set-Cookie")
	if !ck.Secure || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" || ck.Domain != "" ||
		!strings.Contains(raw, "Secure") || !strings.Contains(raw, "SameSite=Strict") {
		t.Errorf("cookie attributes: %q", raw)
	}
	if len(ck.Value) != 22 { // 128 bits, base64url
		t.Errorf("cookie value %q", ck.Value)
	}
	pending := c.cookie
	c.must(200, "POST", "/api/v1/session/second-factor", map[string]string{"code": e.code(secret)})
	e.clock.Advance(30 * time.Second)
	signedIn := c.cookie
	if signedIn == pending {
		t.Fatal("cookie not rotated at sign-in")
	}
	replay := func(id string) int {
		return (&client{e: e, cookie: id, remote: c.remote, header: http.Header{}}).do("GET", "/api/v1/me", nil).code
	}
	if got := replay(pending); got != 401 {
		t.Errorf("pending id after sign-in: %d", got)
	}
	c.must(200, "POST", "/api/v1/session/reauth", map[string]string{"code": e.code(secret)})
	if c.cookie == signedIn {
		t.Fatal("cookie not rotated at re-verification")
	}
	if got := replay(signedIn); got != 401 {
		t.Errorf("id before re-verification: %d", got)
	}
	// Signing in again from a browser with a session ends that session.
	again := &client{e: e, cookie: c.cookie, csrf: c.csrf, remote: c.remote, header: http.Header{}}
	before := again.cookie
	again.must(200, "POST", "/api/v1/session", map[string]string{"username": "alice", "password": "alice-password"})
	if got := replay(before); got != 401 || again.cookie == before {
		t.Errorf("old session after a new sign-in: %d", got)
	}

	// Sign-out ends the session on the server: replaying the cookie fails.
	b := e.client()
	e.user("bob", "bob-password", "")
	b.signIn("bob", "bob-password", "")
	id := b.cookie
	out := b.must(204, "DELETE", "/api/v1/session", nil)
	if ck := setCookie(t, out); ck.MaxAge >= 0 {
		t.Errorf("sign-out does not clear the cookie: %+v", ck)
	}
	if got := replay(id); got != 401 {
		t.Errorf("replay after sign-out: %d", got)
	}

	// Idle: 29 minutes apart keeps it; 30 idle minutes end it.
	b.signIn("bob", "bob-password", "")
	e.clock.Advance(29 * time.Minute)
	b.must(200, "GET", "/api/v1/me", nil)
	e.clock.Advance(29 * time.Minute)
	b.must(200, "GET", "/api/v1/me", nil)
	e.clock.Advance(30 * time.Minute)
	b.must(401, "GET", "/api/v1/me", nil)

	// Absolute: busy all along, it still ends 12 hours after sign-in.
	b.signIn("bob", "bob-password", "")
	for range 12*3 - 1 {
		e.clock.Advance(20 * time.Minute)
		b.must(200, "GET", "/api/v1/me", nil)
	}
	e.clock.Advance(20 * time.Minute)
	b.must(401, "GET", "/api/v1/me", nil)
}

// TestSessionSurvivesRestart: sessions live in the store; after a restart
// (a new Server on the same store, the old one closed) a session in use
// goes on, but its re-verification window is gone, and its absolute
// timeout still counts from the sign-in.
func TestSessionSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	c := e.client()
	c.signIn("alice", "alice-password", "")
	for range 6 { // two busy hours
		e.clock.Advance(20 * time.Minute)
		c.must(200, "GET", "/api/v1/me", nil)
	}
	restart := func() {
		t.Helper()
		if err := e.srv.Close(bg); err != nil {
			t.Fatal(err)
		}
		srv, err := New(e.srv.cfg)
		if err != nil {
			t.Fatal(err)
		}
		e.srv = srv
	}
	restart()
	e.clock.Advance(10 * time.Minute)
	c.must(200, "GET", "/api/v1/me", nil)
	r := c.do("POST", "/api/v1/me/app-passwords", map[string]string{"name": "x"})
	if r.code != 403 || r.errCode() != "reauth_required" {
		t.Errorf("after restart: %d %s", r.code, r.body)
	}
	restart()
	c.must(200, "POST", "/api/v1/session/reauth", map[string]string{"password": "alice-password"})
	c.must(200, "POST", "/api/v1/me/app-passwords", map[string]string{"name": "x"})
	for e.clock.Now().Before(epoch.Add(12*time.Hour - 20*time.Minute)) {
		e.clock.Advance(20 * time.Minute)
		c.must(200, "GET", "/api/v1/me", nil)
	}
	e.clock.Advance(20 * time.Minute)
	c.must(401, "GET", "/api/v1/me", nil)

	// A session idle at the restart is not revived by it.
	d := e.client()
	d.signIn("alice", "alice-password", "")
	e.clock.Advance(31 * time.Minute)
	restart()
	d.must(401, "GET", "/api/v1/me", nil)
}

// TestPasswordChangeSignsOutElsewhere: the user's other web sessions end,
// the one that made the change stays.
func TestPasswordChangeSignsOutElsewhere(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	a, b := e.client(), e.client()
	a.signIn("alice", "alice-password", "")
	b.signIn("alice", "alice-password", "")
	a.must(204, "PUT", "/api/v1/me/password", map[string]any{"current_password": "alice-password", "new_password": "new-password-1"})
	a.must(200, "GET", "/api/v1/me", nil)
	b.must(401, "GET", "/api/v1/me", nil)
	r := a.do("PUT", "/api/v1/me/password", map[string]any{"current_password": "wrong-password", "new_password": "new-password-2"})
	if r.code != 422 {
		t.Errorf("wrong current password: %d %s", r.code, r.body)
	}
}
