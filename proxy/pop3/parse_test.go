package pop3

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/postern-dev/postern/proxy"
)

func TestReadLine(t *testing.T) {
	cases := []struct {
		name    string
		input   string
		bufSize int
		max     int
		want    []string
		wantErr error
	}{
		{name: "CRLF and bare LF", input: "CAPA\r\nNOOP\nQUIT\r\n", max: 64, want: []string{"CAPA", "NOOP", "QUIT"}, wantErr: io.EOF},
		{name: "inner CR kept", input: "PASS a\rb\r\n", max: 64, want: []string{"PASS a\rb"}, wantErr: io.EOF},
		{name: "empty line", input: "\r\n", max: 64, want: []string{""}, wantErr: io.EOF},
		{name: "line across buffer refills", input: strings.Repeat("x", 100) + "\r\n", bufSize: 16, max: 102, want: []string{strings.Repeat("x", 100)}, wantErr: io.EOF},
		{name: "limit counts the terminator", input: strings.Repeat("x", 100) + "\r\n", bufSize: 16, max: 101, wantErr: errLineTooLong},
		{name: "unterminated over limit", input: strings.Repeat("x", 200), bufSize: 16, max: 64, wantErr: errLineTooLong},
		{name: "unterminated at EOF", input: "QUIT", max: 64, wantErr: io.EOF},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			size := tc.bufSize
			if size == 0 {
				size = 4096
			}
			r := bufio.NewReaderSize(strings.NewReader(tc.input), size)
			var got []string
			var err error
			for {
				var line []byte
				if line, err = readLine(r, tc.max); err != nil {
					break
				}
				got = append(got, string(line))
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("lines = %q, want %q", got, tc.want)
			}
			if !errors.Is(err, tc.wantErr) {
				t.Errorf("error = %v, want %v", err, tc.wantErr)
			}
		})
	}
}

// TestReadLineStopsAtLimit: the reader never consumes more than the limit
// plus what had already arrived, however long the line is.
func TestReadLineStopsAtLimit(t *testing.T) {
	src := &countingReader{r: strings.NewReader(strings.Repeat("x", 1<<20))}
	r := bufio.NewReaderSize(src, 16)
	if _, err := readLine(r, 100); !errors.Is(err, errLineTooLong) {
		t.Fatalf("error = %v, want errLineTooLong", err)
	}
	if src.n > 100+16 {
		t.Errorf("read %d bytes for a 100-byte limit", src.n)
	}
}

type countingReader struct {
	r io.Reader
	n int
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += n
	return n, err
}

func TestParseCommand(t *testing.T) {
	cases := []struct {
		line   string
		want   command
		wantOK bool
	}{
		{"CAPA", command{name: "CAPA"}, true},
		{"user alice", command{name: "USER", arg: "alice"}, true},
		{"PASS abcd efgh  ijkl ", command{name: "PASS", arg: "abcd efgh  ijkl "}, true},
		{"PASS ", command{name: "PASS"}, true},
		{"AUTH PLAIN =", command{name: "AUTH", arg: "PLAIN ="}, true},
		{"XCLIENT ADDR=1", command{name: "XCLIENT", arg: "ADDR=1"}, true},
		{"", command{}, false},
		{" USER alice", command{}, false},
		{"Host: evil.example", command{}, false},
		{"US3R x", command{}, false},
		{"\x16\x03\x01\x02\x00", command{}, false},
		{strings.Repeat("A", maxKeyword+1), command{}, false},
		{"ÜSER x", command{}, false},
	}
	for _, tc := range cases {
		t.Run(tc.line, func(t *testing.T) {
			got, ok := parseCommand([]byte(tc.line))
			if ok != tc.wantOK || got != tc.want {
				t.Errorf("parseCommand(%q) = %+v, %v; want %+v, %v", tc.line, got, ok, tc.want, tc.wantOK)
			}
		})
	}
}

func TestEncodeCommand(t *testing.T) {
	cases := []struct {
		name    string
		keyword string
		args    []string
		want    string
	}{
		{name: "plain", keyword: "XCLIENT", args: []string{"ADDR=192.0.2.1", "PORT=1"}, want: "XCLIENT ADDR=192.0.2.1 PORT=1\r\n"},
		{name: "no args", keyword: "CAPA", want: "CAPA\r\n"},
		{name: "space in argument", keyword: "USER", args: []string{"a b"}},
		{name: "CRLF in argument", keyword: "USER", args: []string{"a\r\nDELE 1"}},
		{name: "LF in argument", keyword: "USER", args: []string{"a\nb"}},
		{name: "NUL in argument", keyword: "USER", args: []string{"a\x00"}},
		{name: "empty argument", keyword: "USER", args: []string{""}},
		{name: "CR in keyword", keyword: "US\rER", args: []string{"a"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := encodeCommand(tc.keyword, tc.args...)
			if tc.want == "" {
				if !errors.Is(err, errUnsafeArgument) {
					t.Errorf("encodeCommand = %q, %v; want errUnsafeArgument", got, err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Errorf("encodeCommand = %q, %v; want %q", got, err, tc.want)
			}
		})
	}
}

func TestResponseCode(t *testing.T) {
	cases := map[string]string{
		"-ERR [AUTH] Authentication failed.": " [AUTH]",
		"-ERR [SYS/TEMP] busy":               " [SYS/TEMP]",
		"-ERR [IN-USE] locked":               " [IN-USE]",
		"-ERR no code":                       "",
		"-ERR [alice@example.org] x":         "",
		"-ERR [" + strings.Repeat("A", 40):   "",
		"+OK [XCLIENT]":                      "",
	}
	for line, want := range cases {
		t.Run(line, func(t *testing.T) {
			if got := responseCode([]byte(line)); got != want {
				t.Errorf("responseCode(%q) = %q, want %q", line, got, want)
			}
		})
	}
}

func TestNewDefaults(t *testing.T) {
	cases := []struct {
		name        string
		cfg         Config
		wantLine    int
		wantBad     int
		wantFailure string
	}{
		{name: "zero", wantLine: proxy.DefaultMaxLine, wantBad: proxy.DefaultMaxBadCommands,
			wantFailure: "-ERR [AUTH] Authentication failed. Mail apps need an app password."},
		{name: "set", cfg: Config{Adapter: proxy.Adapter{MaxLine: 1024, MaxBadCommands: 3, AccountURL: testAccountURL}}, wantLine: 1024, wantBad: 3, wantFailure: testFailure},
		{name: "URL with CRLF", cfg: Config{Adapter: proxy.Adapter{AccountURL: "https://x.test/\r\n+OK"}}, wantLine: proxy.DefaultMaxLine, wantBad: proxy.DefaultMaxBadCommands,
			wantFailure: "-ERR [AUTH] Authentication failed. Mail apps need an app password: https://x.test/  +OK"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := New(tc.cfg)
			if p.maxLine != tc.wantLine || p.maxBad != tc.wantBad || p.failure != tc.wantFailure {
				t.Errorf("New = line %d, bad %d, failure %q; want %d, %d, %q", p.maxLine, p.maxBad, p.failure, tc.wantLine, tc.wantBad, tc.wantFailure)
			}
			if p.Name() != "pop3" {
				t.Errorf("Name = %q", p.Name())
			}
		})
	}
}
