package imap

import (
	"bufio"
	"errors"
	"io"
	"runtime"
	"strings"
	"testing"
)

// testDecoder reads input; conts counts continuation requests.
func testDecoder(input string, maxLine int, conts *int) *decoder {
	return newDecoder(bufio.NewReader(strings.NewReader(input)), maxLine, func() error {
		*conts++
		return nil
	})
}

func TestDecoderAstring(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  string
		err   error
		conts int
		rest  string // what must be left unread
	}{
		{"atom", "alice rest", "alice", nil, 0, " rest"},
		{"atom with bracket", "a]b\r\n", "a]b", nil, 0, "\r\n"},
		{"atom utf-8", "jürgen ", "jürgen", nil, 0, " "},
		{"quoted", `"a b" `, "a b", nil, 0, " "},
		{"quoted escapes", `"a\"b\\c"`, `a"b\c`, nil, 0, ""},
		{"quoted empty", `""`, "", nil, 0, ""},
		{"sync literal", "{3}\r\nabc def", "abc", nil, 1, " def"},
		{"sync literal bare LF", "{3}\nabc", "abc", nil, 1, ""},
		{"non-sync literal", "{4+}\r\na\r\nb", "a\r\nb", nil, 0, ""},
		{"empty literal", "{0}\r\n\r\n", "", nil, 1, "\r\n"},
		{"literal leading zeros", "{003}\r\nabc", "abc", nil, 1, ""},
		{"paren", "(a", "", errSyntax, 0, "(a"},
		{"wildcard", "%a", "", errSyntax, 0, "%a"},
		{"atom ends at paren", "ab)", "ab", nil, 0, ")"},
		{"quoted NUL", "\"a\x00b\"", "", errSyntax, 0, "b\""},
		{"quoted CR", "\"a\rb\"", "", errSyntax, 0, "b\""},
		{"quoted bad escape", `"a\b"`, "", errSyntax, 0, `"`},
		{"quoted EOF", `"abc`, "", io.EOF, 0, ""},
		{"literal 2^32", "{4294967296}\r\nx", "", errLiteralTooLarge, 0, "x"},
		{"literal over line", "{65}\r\n", "", errLiteralTooLarge, 0, ""},
		{"non-sync over line", "{65+}\r\n", "", errNonSyncTooLarge, 0, ""},
		{"literal no digits", "{}\r\n", "", errSyntax, 0, "\r\n"},
		{"literal junk", "{3x}\r\n", "", errSyntax, 0, "}\r\n"},
		{"literal plus junk", "{3+x}\r\n", "", errSyntax, 0, "}\r\n"},
		{"literal no CRLF", "{3} abc", "", errSyntax, 0, "abc"},
		{"literal short", "{5}\r\nab", "", io.ErrUnexpectedEOF, 1, ""},
		{"atom over line", strings.Repeat("x", 70), "", errLineTooLong, 0, strings.Repeat("x", 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conts := 0
			d := testDecoder(tt.input, 64, &conts)
			d.begin()
			got, err := d.astring()
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("astring(%q) = %q, %v; want %q, %v", tt.input, got, err, tt.want, tt.err)
			}
			if conts != tt.conts {
				t.Errorf("%d continuations, want %d", conts, tt.conts)
			}
			rest, _ := io.ReadAll(d.r)
			if string(rest) != tt.rest {
				t.Errorf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

func TestDecoderTag(t *testing.T) {
	tests := []struct {
		input string
		want  string
		err   error
	}{
		{"a1 NOOP", "a1", nil},
		{"A.b-C_9 NOOP", "A.b-C_9", nil},
		{"+ NOOP", "", errBadTag},
		{"a* NOOP", "", errBadTag},
		{"a\"b NOOP", "", errBadTag},
		{"a\\b NOOP", "", errBadTag},
		{"<a> NOOP", "", errBadTag},
		{"a/b NOOP", "", errBadTag},
		{"a=b NOOP", "", errBadTag},
		{"a:b NOOP", "", errBadTag},
		{"\xc3\xa9 NOOP", "", errBadTag},
		{"a\r\n", "", errBadTag},
		{"\r\n", "", errBadTag},
		{"a", "", io.EOF},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			conts := 0
			d := testDecoder(tt.input, 64, &conts)
			d.begin()
			got, err := d.tag()
			if !errors.Is(err, tt.err) || got != tt.want {
				t.Fatalf("tag(%q) = %q, %v; want %q, %v", tt.input, got, err, tt.want, tt.err)
			}
		})
	}
}

func TestDecoderNstring(t *testing.T) {
	tests := []struct {
		input  string
		want   string
		isStr  bool
		err    error
		remain string
	}{
		{"NIL)", "", false, nil, ")"},
		{"nil ", "", false, nil, " "},
		{"NILS ", "", false, errSyntax, " "},
		{"\"NIL\" ", "NIL", true, nil, " "},
		{"{2+}\r\nab)", "ab", true, nil, ")"},
		{"abc ", "", false, errSyntax, "abc "},
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			conts := 0
			d := testDecoder(tt.input, 64, &conts)
			d.begin()
			got, isStr, err := d.nstring()
			if !errors.Is(err, tt.err) || got != tt.want || isStr != tt.isStr {
				t.Fatalf("nstring(%q) = %q, %v, %v; want %q, %v, %v", tt.input, got, isStr, err, tt.want, tt.isStr, tt.err)
			}
			rest, _ := io.ReadAll(d.r)
			if string(rest) != tt.remain {
				t.Errorf("left %q unread, want %q", rest, tt.remain)
			}
		})
	}
}

// TestDecoderCommandBudget proves that literals cannot add up past the
// command budget even when each fits a line.
func TestDecoderCommandBudget(t *testing.T) {
	input := strings.Repeat("{40+}\r\n"+strings.Repeat("x", 40)+" ", 20)
	conts := 0
	d := testDecoder(input, 64, &conts)
	d.begin()
	var err error
	n := 0
	for err == nil {
		if _, err = d.astring(); err == nil {
			err = d.sp()
			n++
		}
	}
	if !errors.Is(err, errNonSyncTooLarge) {
		t.Fatalf("after %d literals: %v, want %v", n, err, errNonSyncTooLarge)
	}
	if d.total > d.maxCommand || n*40 > d.maxCommand {
		t.Fatalf("read %d bytes in %d literals, budget %d", d.total, n, d.maxCommand)
	}
}

func TestDecoderContinuationRefused(t *testing.T) {
	d := newDecoder(bufio.NewReader(strings.NewReader("{5}\r\nalice")), 64, func() error { return errPrivacyRequired })
	d.begin()
	if _, err := d.astring(); !errors.Is(err, errPrivacyRequired) {
		t.Fatalf("astring: %v, want %v", err, errPrivacyRequired)
	}
	if !d.eol {
		t.Fatal("a refused literal must leave the decoder at the end of the line")
	}
}

func TestSkipLine(t *testing.T) {
	tests := []struct {
		name  string
		input string
		err   error
		rest  string
	}{
		{"to LF", "abc\r\nnext", nil, "next"},
		{"over budget", strings.Repeat("(", 100), errLineTooLong, strings.Repeat("(", 36)},
		{"EOF", "abc", io.EOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conts := 0
			d := testDecoder(tt.input, 64, &conts)
			d.begin()
			if err := d.skipLine(); !errors.Is(err, tt.err) {
				t.Fatalf("skipLine: %v, want %v", err, tt.err)
			}
			rest, _ := io.ReadAll(d.r)
			if string(rest) != tt.rest {
				t.Errorf("left %q unread, want %q", rest, tt.rest)
			}
		})
	}
}

// TestP3_BoundedAllocation measures what parsing hostile input allocates:
// a literal's claimed size is never allocated, and nothing grows with a
// line beyond its limit.
func TestP3_BoundedAllocation(t *testing.T) {
	const budget = 64 << 10
	tests := []struct {
		name  string
		input string
	}{
		{"literal of 2^32", "{4294967296}\r\n"},
		{"literal of 2^63", "{9223372036854775808}\r\n"},
		{"non-sync of 2^32", "{4294967296+}\r\n"},
		{"4000 parens", strings.Repeat("(", 4000)},
		{"endless atom", strings.Repeat("x", 1<<20)},
		{"largest literal", "{8192}\r\n" + strings.Repeat("x", 8192)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conts := 0
			d := testDecoder(tt.input, 8192, &conts)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			d.begin()
			_, err := d.astring()
			if err != nil {
				_ = d.skipLine()
			}
			runtime.ReadMemStats(&after)
			if n := after.TotalAlloc - before.TotalAlloc; n > budget {
				t.Fatalf("parsing allocated %d bytes, budget %d", n, budget)
			}
		})
	}
}
