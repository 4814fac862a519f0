package admin

import (
	"fmt"
	"html/template"
	"slices"
	"strings"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// scopeNames are how people know the protocols an app password serves.
var scopeNames = map[string]string{"imap": "mail (IMAP)", "pop3": "mail (POP3)", "smtp": "sending mail (SMTP)",
	"caldav": "calendars (CalDAV)", "carddav": "contacts (CardDAV)", "activesync": "phone sync (ActiveSync)"}

// noSending is an app password that reads mail but cannot send it: made
// before sending existed and limited then, or limited since. Scopes never
// grow (a limit was a choice), so the page says how to add sending.
func noSending(s []authstore.Protocol) bool {
	return !slices.Contains(s, authstore.SMTP) && (slices.Contains(s, authstore.IMAP) || slices.Contains(s, authstore.POP3))
}

// isAdmin reports whether the user may open the admin console.
func isAdmin(u *authstore.User) bool { return u != nil && u.Role == authstore.RoleAdmin }

// templateFuncs are the helpers the templates use.
var templateFuncs = template.FuncMap{
	"when": func(t any) string {
		switch v := t.(type) {
		case time.Time:
			if !v.IsZero() {
				return v.UTC().Format("2 Jan 2006 15:04 UTC")
			}
		case *time.Time:
			if v != nil {
				return v.UTC().Format("2 Jan 2006 15:04 UTC")
			}
		}
		return ""
	},
	"iso": func(t time.Time) string { return t.UTC().Format(time.RFC3339) },
	"day": func(t *time.Time) string {
		if t == nil {
			return ""
		}
		return t.UTC().Add(-time.Second).Format(time.DateOnly)
	},
	"isAdmin": isAdmin,
	"scopes": func(s []authstore.Protocol) string {
		if len(s) == 0 || len(s) == len(appPasswordScopes) {
			return "everything"
		}
		names := make([]string, len(s))
		for i, v := range s {
			names[i] = scopeNames[string(v)]
		}
		return strings.Join(names, ", ")
	},
	"scopeName": func(s string) string { return scopeNames[s] },
	"upper":     func(v any) string { return strings.ToUpper(fmt.Sprint(v)) },
	"list":      func(s ...string) []string { return s },
	"noSending": noSending,
}
