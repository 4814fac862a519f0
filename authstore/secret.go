package authstore

import (
	"errors"
	"io"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"
)

const (
	appPasswordLen = 24 // 24 × log2(26) ≈ 112.8 bits (A7)
	backupCodeLen  = 12
	backupSetSize  = 5
	maxUsernameLen = 256
)

// ErrInvalidUsername rejects names that cannot be canonicalised.
var ErrInvalidUsername = errors.New("invalid username")

// CanonicalUsername trims, applies NFKC and case folding, and refuses
// control characters, so `alice`, `ALICE` and `ａｌｉｃｅ` are one account
// with one failure budget (A12). Idempotent.
func CanonicalUsername(s string) (string, error) {
	if c, ok := canonicalASCII(s); ok {
		return c, nil
	}
	if len(s) > 4*maxUsernameLen || !utf8.ValidString(s) {
		return "", ErrInvalidUsername
	}
	return canonicalFull(s)
}

// canonicalFull is CanonicalUsername for any valid UTF-8 input.
func canonicalFull(s string) (string, error) {
	s = strings.TrimSpace(norm.NFKC.String(s))
	s = norm.NFKC.String(strings.Map(cherokeeFold, cases.Fold().String(s)))
	if s == "" || utf8.RuneCountInString(s) > maxUsernameLen {
		return "", ErrInvalidUsername
	}
	for _, r := range s {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || r == '/' || unicode.IsSpace(r) {
			return "", ErrInvalidUsername
		}
	}
	return s, nil
}

// canonicalASCII is CanonicalUsername's answer for the common name made
// of printable ASCII without spaces, where NFKC changes nothing and case
// folding is ASCII lower case; ok is false for anything else, which takes
// the full path (TestCanonicalASCIIAgrees checks they agree).
func canonicalASCII(s string) (string, bool) {
	if s == "" || len(s) > maxUsernameLen {
		return "", false
	}
	lower := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || c == '/' {
			return "", false
		}
		if c >= 'A' && c <= 'Z' {
			lower = false
		}
	}
	if lower {
		return s, true
	}
	return strings.ToLower(s), true
}

// cherokeeFold finishes case folding for Cherokee, which Unicode folds to
// the capitals (the small letters came later, in Unicode 8). x/text's Fold
// swaps the two cases instead, so without this `Ꭰ` and `ꭰ` would each
// canonicalise to the other and never to one account.
func cherokeeFold(r rune) rune {
	switch {
	case r >= 0xAB70 && r <= 0xABBF:
		return r - 0xAB70 + 0x13A0
	case r >= 0x13F8 && r <= 0x13FD:
		return r - 8
	}
	return r
}

// NormalizeAppPassword drops spaces and dashes and folds ASCII case; ok
// reports whether the result has app-password shape (24 letters a–z).
func NormalizeAppPassword(s string) (norm string, ok bool) {
	return normalize(s, appPasswordLen, 4*appPasswordLen, func(c byte) (byte, bool) {
		switch {
		case c >= 'A' && c <= 'Z':
			return c + 'a' - 'A', true
		case c >= 'a' && c <= 'z':
			return c, true
		}
		return 0, false
	})
}

// NormalizeCode drops spaces and dashes from a numeric code; ok reports
// whether n digits remain.
func NormalizeCode(s string, n int) (code string, ok bool) {
	return normalize(s, n, 4*n+8, func(c byte) (byte, bool) { return c, c >= '0' && c <= '9' })
}

// normalize drops the spaces and dashes people type between groups, maps
// every other byte through keep (refusing the input if keep does), and
// accepts exactly n symbols. Inputs longer than maxIn are refused unread.
func normalize(s string, n, maxIn int, keep func(byte) (byte, bool)) (string, bool) {
	if len(s) > maxIn {
		return "", false
	}
	if len(s) == n {
		// Typed without separators, perhaps already in canonical form.
		same := true
		for i := 0; i < len(s); i++ {
			c, ok := keep(s[i])
			if !ok {
				return "", false
			}
			if c != s[i] {
				same = false
				break
			}
		}
		if same {
			return s, true
		}
	}
	var b strings.Builder
	b.Grow(n)
	for i := 0; i < len(s); i++ {
		if s[i] == ' ' || s[i] == '-' {
			continue
		}
		c, ok := keep(s[i])
		if !ok {
			return "", false
		}
		b.WriteByte(c)
	}
	if b.Len() != n {
		return "", false
	}
	return b.String(), true
}

// FormatGrouped inserts a space every size characters: `abcd efgh …`.
func FormatGrouped(s string, size int) string {
	var b strings.Builder
	for i := 0; i < len(s); i += size {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(s[i:min(i+size, len(s))])
	}
	return b.String()
}

// randomString draws n symbols uniformly from alphabet (len ≤ 256) with
// rejection sampling, so no symbol is favoured by a modulo (A6).
func randomString(rnd io.Reader, alphabet string, n int) (string, error) {
	limit := 256 - 256%len(alphabet)
	out := make([]byte, 0, n)
	buf := make([]byte, n+8)
	for len(out) < n {
		if _, err := io.ReadFull(rnd, buf); err != nil {
			return "", err
		}
		for _, c := range buf {
			if int(c) < limit && len(out) < n {
				out = append(out, alphabet[int(c)%len(alphabet)])
			}
		}
	}
	return string(out), nil
}

func newAppPassword(rnd io.Reader) (string, error) {
	return randomString(rnd, "abcdefghijklmnopqrstuvwxyz", appPasswordLen)
}

func newNumericCode(rnd io.Reader) (string, error) {
	return randomString(rnd, "0123456789", backupCodeLen)
}
