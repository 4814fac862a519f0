package admin

import (
	"fmt"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// unsafeTexts are texts no name, display name or email may hold (W8).
var unsafeTexts = map[string]string{
	"escape":              "Mallory\x1b[2J",
	"newline":             "Mallory\nadmin",
	"right-to-left":       "Mallory\u202egpj.exe",
	"isolate":             "Mallory\u2066x\u2069",
	"left-to-right mark":  "Mallory\u200e",
	"arabic letter mark":  "Mallory\u061c",
	"line separator":      "Mallory\u2028admin",
	"paragraph separator": "Mallory\u2029admin",
}

// TestW8_CreateValidatesLikeUpdate: a display name or email that an
// update refuses is refused when the account is created, with the same
// answer: too long (60 KB, inside the body cap; 65 KB, over it), controls,
// bidirectional controls and line separators. A name with such a character
// is refused for app passwords and API tokens too.
func TestW8_CreateValidatesLikeUpdate(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	ops := e.tokenClient(e.token("ops", authstore.RoleAdmin, ""))
	bad := map[string]string{"60 KB": strings.Repeat("a", 60<<10), "65 KB": strings.Repeat("a", 65<<10)}
	for k, v := range unsafeTexts {
		bad[k] = v
	}
	i := 0
	for name, text := range bad {
		for _, field := range []string{"display_name", "email"} {
			i++
			user := fmt.Sprintf("new%d", i)
			create := ops.do("POST", "/api/v1/users", map[string]any{"username": user, field: text})
			update := ops.do("PATCH", "/api/v1/users/alice", map[string]any{field: text})
			if create.code != update.code || create.errCode() != update.errCode() || create.code < 400 || create.code >= 500 {
				t.Errorf("%s %s: create %d %s, update %d %s", field, name, create.code, create.errCode(), update.code, update.errCode())
			}
			if _, err := e.st.GetUser(bg, user); err == nil {
				t.Errorf("%s %s: the account was created", field, name)
			}
		}
	}
	u, err := e.st.GetUser(bg, "alice")
	if err != nil || u.Display != "" || u.Email != "" {
		t.Errorf("alice after refused updates: %+v %v", u, err)
	}
	for name, text := range unsafeTexts {
		if r := ops.do("POST", "/api/v1/users/alice/app-passwords", map[string]any{"name": text}); r.code != 422 {
			t.Errorf("app password named with %s: %d %s", name, r.code, r.body)
		}
		if r := ops.do("POST", "/api/v1/tokens", map[string]any{"name": text, "role": "admin"}); r.code != 422 {
			t.Errorf("token named with %s: %d %s", name, r.code, r.body)
		}
	}
	// What people write in names still goes through.
	for j, ok := range []string{"Zoë Müller", "محمد", "李雷", "👩‍💻 at work", "O'Brien <ob@example.org>"} {
		ops.must(200, "POST", "/api/v1/users", map[string]any{"username": fmt.Sprintf("ok%d", j), "display_name": ok})
		ops.must(200, "PATCH", "/api/v1/users/alice", map[string]any{"display_name": ok})
	}
}
