package safetext

import (
	"strings"
	"testing"
	"unicode/utf8"
)

func TestShow(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Zoë 👩‍💻", "Zoë 👩‍💻"}, // a zero-width joiner is no bidi control
		{"a\nb\rc\td", `a\x0ab\x0dc\x09d`},
		{"\x1b[31mred", `\x1b[31mred`},
		{"\u202egpj.exe", `\u202egpj.exe`},
		{"a\u2066b\u2069c\u200ed\u200fe\u061cf", `a\u2066b\u2069c\u200ed\u200fe\u061cf`},
		{"line\u2028para\u2029", `line\u2028para\u2029`},
		{"\u0085next line", `\x85next line`},
		{"bad \xff byte", `bad \xff byte`},
	} {
		if got := Show(tc.in); got != tc.want {
			t.Errorf("Show(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if Valid(tc.in) != (tc.in == tc.want) {
			t.Errorf("Valid(%q) = %t", tc.in, Valid(tc.in))
		}
	}
}

func FuzzShow(f *testing.F) {
	for _, s := range []string{"alice", "a\nb", "\u202e", "\xff", "\u2028"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Show(s)
		if !Valid(out) || strings.ContainsFunc(out, Unsafe) || !utf8.ValidString(out) {
			t.Fatalf("Show(%q) = %q is not safe", s, out)
		}
		if Show(out) != out {
			t.Fatalf("Show is not idempotent on %q", s)
		}
	})
}
