// Package safetext is the one place that decides which characters of
// untrusted text (names, display names, client names, anything a user or a
// client chose) may be shown or logged as they are, and makes the rest
// visible as escapes. It does not escape for HTML, JSON or a shell: those
// belong to their encoders.
package safetext

import (
	"fmt"
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
