package admin

import (
	"strings"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// activityLine is one audit event in plain words.
type activityLine struct {
	Time time.Time
	Text string
	Warn bool // something the person should act on
}

// protocolNames are how people know the protocols.
var protocolNames = map[string]string{"imap": "A mail app (IMAP)", "pop3": "A mail app (POP3)",
	"caldav": "A calendar app", "carddav": "A contacts app", "activesync": "A phone (ActiveSync)", "web": "The web sign-in"}

// eventTexts say what an event means to the account's owner.
var eventTexts = map[string]string{
	"mfa.enroll_begin": "Two-step verification set-up was started",
	"mfa.enable":       "Two-step verification was turned on",
	"mfa.disable":      "Two-step verification was turned off",
	"mfa.reset":        "Two-step verification was reset",
	"mfa.backup_codes": "New backup codes were generated; the old ones stopped working",
	"mfa.admin_code":   "A one-time sign-in code was issued",
	"apppw.create":     "An app password was created",
	"apppw.revoke":     "An app password was revoked",
	"user.password":    "The account password was changed",
	"user.create":      "The account was created",
	"user.disable":     "The account was disabled",
	"user.enable":      "The account was enabled",
	"user.role":        "The account's role was changed",
	"reauth":           "Your identity was confirmed for a security change",
}

// byWhom names who made a change, when it was not the person reading.
func byWhom(actor, user string) string {
	kind, name, _ := strings.Cut(actor, ":")
	switch {
	case actor == "" || kind == "self" || actor == user:
		return ""
	case kind == "admin":
		return " by the administrator " + name
	case kind == "token":
		return " by the API token “" + name + "”"
	case kind == "cli", actor == "init":
		return " by the server's operator"
	case kind == "setup": // the accounts a demo or an installer sets up
		return " during set-up"
	}
	return " by " + actor
}

// describeEvents turns the first n events the owner has words for into
// sentences, in the order given: the audit log lists newest first.
func describeEvents(evs []authstore.Event, n int) []activityLine {
	var out []activityLine
	for _, ev := range evs {
		if len(out) == n {
			break
		}
		if l, ok := describeEvent(ev); ok {
			out = append(out, l)
		}
	}
	return out
}

func describeEvent(e authstore.Event) (activityLine, bool) {
	l := activityLine{Time: e.Time}
	from := ""
	if e.Source != "" {
		from = " from " + e.Source
	}
	who := protocolNames[string(e.Protocol)]
	if who == "" {
		who = "An app"
	}
	switch {
	case e.Kind == "login" && e.Reason == "account_password_needs_app_password":
		l.Text = who + " tried your account password" + from + ": create an app password for it." // the line shows the time
		l.Warn = true
	case e.Kind == "second_factor" || e.Kind == "login" && e.Protocol == authstore.Web:
		if e.Result == "ok" {
			l.Text = "You signed in on the web" + from
			break
		}
		l.Text = "A web sign-in failed" + from
		l.Warn = true
	case e.Kind == "login" && e.Result == "ok":
		l.Text = who + " signed in" + from
	case e.Kind == "login":
		l.Text = who + " failed to sign in" + from
		l.Warn = true
	default:
		t, ok := eventTexts[e.Kind]
		if !ok {
			return l, false
		}
		l.Text = t
		l.Text += byWhom(e.Actor, e.User)
		l.Text += from
	}
	return l, true
}
