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

func TestRaw(t *testing.T) {
	long := strings.Repeat("é", 200) // 400 bytes
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"Zoë", "Zoë"},
		{"evil\r\nresult=ok", `"evil\r\nresult=ok"`},
		{"\u202egpj.exe", `"\u202egpj.exe"`},
		{"bad \xff", `"bad \xff"`},
		{long, strings.Repeat("é", 128)}, // cut at 256 bytes, on a character
	} {
		if got := Raw(tc.in); got != tc.want {
			t.Errorf("Raw(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestOneLine(t *testing.T) {
	for _, tc := range []struct{ in, repl, want string }{
		{"https://example.org/account", "", "https://example.org/account"},
		{"a\r\nb\x00c\x7fd\u0085e", "", "abcde"},
		{"a\r\nb", " ", "a  b"},
		{"\u202egpj.exe\u2028", "", "gpj.exe"},
		{"bad \xff", "", "bad \ufffd"},
	} {
		if got := OneLine(tc.in, tc.repl); got != tc.want {
			t.Errorf("OneLine(%q, %q) = %q, want %q", tc.in, tc.repl, got, tc.want)
		}
	}
}

func TestClip(t *testing.T) {
	for _, tc := range []struct {
		in   string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "abc"},
		{"aé", 2, "a"}, // é is two bytes: the cut drops it whole
		{"aé", 3, "aé"},
		{"日本", 5, "日"},
		{"abc", 0, ""},
	} {
		if got := Clip(tc.in, tc.n); got != tc.want {
			t.Errorf("Clip(%q, %d) = %q, want %q", tc.in, tc.n, got, tc.want)
		}
	}
}

// TestTwoKindsOfControl: BreaksCommand and HasControl answer different
// questions, and each must keep its own answer.
func TestTwoKindsOfControl(t *testing.T) {
	for _, tc := range []struct {
		in                 string
		breaks, hasControl bool
	}{
		{"alice", false, false},
		{"a\rb", true, true},
		{"a\nb", true, true},
		{"a\x00b", true, true},
		{"a\tb", false, true},
		{"a\x1bb", false, true},
		{"a\u0085b", false, true},
		{"a\u202eb", false, false}, // text in a path or a password
	} {
		if got := BreaksCommand(tc.in); got != tc.breaks {
			t.Errorf("BreaksCommand(%q) = %t", tc.in, got)
		}
		if got := HasControl(tc.in); got != tc.hasControl {
			t.Errorf("HasControl(%q) = %t", tc.in, got)
		}
	}
}
