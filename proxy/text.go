package proxy

import (
	"github.com/postern-dev/postern/internal/safetext"
	"strings"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// SafeText makes configured or internal text (an account URL, a reason)
// safe to put into one reply line: control characters become spaces, so
// nothing can end the line early or forge another, and the ends are
// trimmed.
func SafeText(s string) string {
	return strings.TrimSpace(safetext.OneLine(s, " "))
}

// maxReason bounds a goodbye's reason in a reply line.
const maxReason = 200

// ByeLine is the words of a goodbye line (POP3 -ERR, SMTP 421) within room
// bytes: the session's reason, which comes from our own code but is still
// forced onto one bounded line, and the account page where the owner makes
// a new credential when that fits; the page is left out rather than cut.
func ByeLine(r Reason, accountURL string, room int) string {
	text := safetext.Clip(SafeText(r.Text), maxReason)
	if text == "" {
		text = "Session ended"
	}
	words := Reason{Text: text, Renew: r.Renew}.Words(accountURL)
	if len(words) > room {
		return text
	}
	return words
}

// LoggedIn is the text of a successful login's answer on a protocol
// without IMAP's ALERT (POP3 +OK, SMTP 235): ok, and during the
// organisation's grace period a warning after it, where clients that show
// server text show it. accountURL must be SafeText already.
func LoggedIn(ok string, g authstore.Grant, accountURL string) string {
	if g.GraceUntil.IsZero() {
		return ok
	}
	warning := ok + ". Warning: from " + g.GraceUntil.UTC().Format(time.DateOnly) +
		" two-step verification is required and mail apps need an app password"
	if accountURL == "" {
		return warning + "."
	}
	return warning + ": " + accountURL
}
