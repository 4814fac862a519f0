// Package safetext is the one place that decides which characters of
// untrusted text (names, display names, client names, anything a user or a
// client chose) may be shown, logged or handed on as they are. It does not
// escape for HTML, JSON or a shell: those belong to their encoders.
//
// Four questions get four answers, because they really differ:
//
//   - May this be shown as it is? Unsafe and Valid: no control character,
//     no bidirectional control, no line or paragraph separator, and UTF-8.
//     Names are refused unless Valid when they are first accepted.
//   - How is it shown anyway? Show escapes in place (\x1b, \u202e), for a
//     table, a status line, an error message or a log record; Raw quotes a
//     value a client sent before postern accepted it, for one log record,
//     so that the reader sees it was never a name postern knew; OneLine
//     drops the unsafe characters or puts a space for each, for words that
//     go into a protocol's answer, where an escape would only be noise to
//     the user reading it; Clip cuts to a length without splitting a
//     character.
//   - Would it split a command of a line protocol? BreaksCommand: CR, LF and
//     NUL only (P4). It guards what goes upstream, where those three end or
//     cut a command; the other controls are harmless there, and a name with
//     a bidirectional control is refused earlier, when it is created.
//   - Is it malformed as protocol input? HasControl: the C0 and C1 controls
//     and DEL, which a credential or a path never holds. It lets the
//     bidirectional controls and separators through, because they are
//     ordinary text in a calendar's path or a password.
package safetext

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Unsafe reports whether r must not reach a terminal, a log line or a
// name as it is: a control character (a newline forges a record, an escape
// sequence drives the terminal), a bidirectional control (U+202A–U+202E,
// U+2066–U+2069, U+200E, U+200F, U+061C reorder what follows, so
// "gpj.exe" can read as "exe.jpg"), or a line or paragraph separator
// (U+2028, U+2029, which some viewers break lines at).
func Unsafe(r rune) bool {
	switch {
	case unicode.IsControl(r):
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069:
		return true
	}
	switch r {
	case 0x200e, 0x200f, 0x061c, 0x2028, 0x2029:
		return true
	}
	return false
}

// Valid reports whether s is UTF-8 without an Unsafe character: what a
// name or other shown text must be when it is first accepted.
func Valid(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, Unsafe)
}

// Show returns s with each Unsafe character, and each byte that is not
// UTF-8, written as a visible escape (\x1b, \u202e), so that s shows as
// one line in its own order. Text that is already Valid comes back as it is.
func Show(s string) string {
	if Valid(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r < 0x100 && Unsafe(r):
			fmt.Fprintf(&b, `\x%02x`, r)
		case Unsafe(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}

// maxRaw caps a raw value in a log record: a client chooses its length.
const maxRaw = 256

// Raw returns a value a client sent, before postern accepted it (a user
// name it could not canonicalise, a path it refused), for one log record:
// cut to 256 bytes, as it is when Valid, and otherwise Go-quoted
// ("evil\r\nresult=ok"), so that the quotes say it is raw and the escapes
// show what it held.
func Raw(s string) string {
	s = Clip(s, maxRaw)
	if Valid(s) {
		return s
	}
	return strconv.Quote(s)
}

// OneLine returns s with each Unsafe character replaced by repl ("" drops
// it) and each byte that is not UTF-8 by U+FFFD: for words that go into
// one line of a protocol's answer (an account page's address, why a
// session ended, a client's name), where they must neither end the line
// nor reorder it.
func OneLine(s, repl string) string {
	if Valid(s) {
		return s
	}
	var b strings.Builder
	for _, r := range s {
		if Unsafe(r) {
			b.WriteString(repl)
		} else {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// Clip returns s cut to at most n bytes without splitting a character:
// a cut never leaves half of one behind.
func Clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// BreaksCommand reports whether s holds CR, LF or NUL: in a command of a
// line protocol (IMAP, POP3, SMTP) CR or LF ends the command and starts
// another, and NUL cuts it short in an upstream written in C. A user name
// or secret with one never reaches an upstream or a log line (P4).
func BreaksCommand(s string) bool {
	return strings.ContainsAny(s, "\r\n\x00")
}

// HasControl reports whether s holds a C0 or C1 control character or DEL:
// what a protocol's parser refuses outright in a credential or a path.
func HasControl(s string) bool {
	return strings.ContainsFunc(s, unicode.IsControl)
}
