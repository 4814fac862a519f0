package admin

import (
	"net/http"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// reauthExempt lists the state changes of signed-in callers that take no
// re-verification, each with the reason. Every other such route must be
// Reauth (TestW1_EveryChangeIsClassified), so a new route cannot forget
// the question.
var reauthExempt = map[string]string{
	// Taking access away: whoever holds the session gains nothing by it,
	// and the owner or an admin must be able to act at once (a lost phone).
	"DELETE /api/v1/me/app-passwords/{id}":           "revokes an app password",
	"DELETE /api/v1/users/{user}/app-passwords/{id}": "revokes an app password",
	"DELETE /api/v1/sessions/{id}":                   "ends a live session",
	"DELETE /api/v1/users/{user}/sessions":           "ends live sessions",
	"DELETE /api/v1/tokens/{id}":                     "revokes an API token",
	// Finishes an enrollment begun under re-verification (POST
	// /api/v1/me/mfa/totp) and proves the new factor with its own code; an
	// enrollment-only session must be able to finish it.
	"POST /api/v1/me/mfa/totp/confirm": "confirms an enrollment with its code",
	// Reads the log and reports; changes nothing.
	"POST /api/v1/audit/verify": "checks the audit chain",
}

// changesAccounts reports whether rt is a state change made by a
// signed-in caller on accounts or the organisation: the sign-in steps
// themselves (SignIn, Pending, Browser, AnySession) verify or end a
// session and are not.
func changesAccounts(rt route) bool {
	if safeMethod(rt.Method) {
		return false
	}
	switch rt.Access {
	case accessEnroll, accessSelf, accessAdmin:
		return true
	}
	return false
}

// TestW1_EveryChangeIsClassified: every state change of a signed-in
// caller is Reauth or listed, with its reason, in reauthExempt; and the
// list names only such routes that are not Reauth.
func TestW1_EveryChangeIsClassified(t *testing.T) {
	e := newEnv(t)
	listed := map[string]bool{}
	for _, rt := range e.srv.routes {
		key := rt.Method + " " + rt.Path
		_, exempt := reauthExempt[key]
		listed[key] = exempt
		switch {
		case !changesAccounts(rt) && exempt:
			t.Errorf("%s is in reauthExempt but is no state change of a signed-in caller", key)
		case rt.Reauth && exempt:
			t.Errorf("%s is Reauth and in reauthExempt", key)
		case changesAccounts(rt) && !rt.Reauth && !exempt:
			t.Errorf("%s changes state without re-verification: make it Reauth, or add it to reauthExempt with the reason", key)
		}
	}
	for key := range reauthExempt {
		if _, ok := listed[key]; !ok {
			t.Errorf("reauthExempt names %s, which is not in the route table", key)
		}
	}
}

// TestW1_EveryReauthRouteOfTheTable: for each Reauth route of the route
// table, an admin's session (which may call every route) re-verifies on a
// frozen clock; 4:59 later the route lets the call through to its handler,
// 5:01 later it answers 403 reauth_required.
func TestW1_EveryReauthRouteOfTheTable(t *testing.T) {
	var n int
	for _, rt := range newEnv(t).srv.routes {
		if !rt.Reauth {
			continue
		}
		n++
		t.Run(rt.Method+" "+rt.Path, func(t *testing.T) {
			e := newEnv(t)
			e.user("root", "root-password", authstore.RoleAdmin)
			e.user("alice", "alice-password", "")
			c := e.client()
			c.signIn("root", "root-password", "")
			e.clock.Advance(20 * time.Minute) // the sign-in's window long closed, the session not idle
			c.must(200, "GET", "/api/v1/me", nil)
			c.must(200, "POST", "/api/v1/session/reauth", map[string]string{"password": "root-password"})

			e.clock.Advance(4*time.Minute + 59*time.Second)
			if r := c.do(rt.Method, concrete(rt.Path), nil); r.code == http.StatusUnauthorized || r.code == http.StatusForbidden {
				t.Errorf("4:59 after re-verification: %d %s", r.code, r.body)
			}
			e.clock.Advance(2 * time.Second)
			if r := c.do(rt.Method, concrete(rt.Path), nil); r.code != http.StatusForbidden || r.errCode() != "reauth_required" {
				t.Errorf("5:01 after re-verification: %d %s, want 403 reauth_required", r.code, r.body)
			}
		})
	}
	if n < 15 {
		t.Errorf("only %d Reauth routes", n)
	}
}
