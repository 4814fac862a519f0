package imap

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
)

func loginChunks(caps []string, user, password string) ([]chunk, error) {
	u := &upstreamConn{caps: caps}
	return u.loginCommand(user, password)
}

func TestEncoderLogin(t *testing.T) {
	big := strings.Repeat("ä", 2500) // 5000 bytes
	tests := []struct {
		name           string
		caps           []string
		user, password string
		want           []chunk
		err            error
	}{
		{"quoted", nil, "alice", "secret", []chunk{{data: []byte("P1 LOGIN \"alice\" \"secret\"\r\n")}}, nil},
		{"escapes", nil, "alice", `a"b\c`, []chunk{{data: []byte(`P1 LOGIN "alice" "a\"b\\c"` + "\r\n")}}, nil},
		{"empty", nil, "alice", "", []chunk{{data: []byte("P1 LOGIN \"alice\" \"\"\r\n")}}, nil},
		{"specials stay quoted", nil, "a b(c)", "{5}", []chunk{{data: []byte("P1 LOGIN \"a b(c)\" \"{5}\"\r\n")}}, nil},
		{"8-bit sync literal", nil, "alice", "pässwd", []chunk{
			{data: []byte("P1 LOGIN \"alice\" {7}\r\n"), wait: true},
			{data: []byte("pässwd\r\n")},
		}, nil},
		{"8-bit LITERAL+", []string{"LITERAL+"}, "jürgen", "x", []chunk{{data: []byte("P1 LOGIN {7+}\r\njürgen \"x\"\r\n")}}, nil},
		{"8-bit LITERAL- small", []string{"literal-"}, "alice", "pässwd", []chunk{{data: []byte("P1 LOGIN \"alice\" {7+}\r\npässwd\r\n")}}, nil},
		{"8-bit LITERAL- large", []string{"LITERAL-"}, "alice", big, []chunk{
			{data: []byte("P1 LOGIN \"alice\" {5000}\r\n"), wait: true},
			{data: []byte(big + "\r\n")},
		}, nil},
		{"CRLF in user (P4)", nil, "alice\r\nx DELETE INBOX", "secret", nil, errUnencodable},
		{"LF in password", nil, "alice", "se\ncret", nil, errUnencodable},
		{"CR in 8-bit password", nil, "alice", "pä\rss", nil, errUnencodable},
		{"NUL in password", nil, "alice", "se\x00cret", nil, errUnencodable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := loginChunks(tt.caps, tt.user, tt.password)
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if showChunks(got) != showChunks(tt.want) {
				t.Fatalf("chunks\n%s\nwant\n%s", showChunks(got), showChunks(tt.want))
			}
			if err == nil {
				assertOneLogin(t, got, tt.user, tt.password)
			}
		})
	}
}

func TestEncoderAtom(t *testing.T) {
	tests := []struct {
		atom string
		err  error
	}{
		{"LOGIN", nil},
		{"P12", nil},
		{"", errUnencodable},
		{"LOG IN", errUnencodable},
		{"A\r\nB", errUnencodable},
		{"X(", errUnencodable},
		{"É", errUnencodable},
	}
	for _, tt := range tests {
		t.Run(tt.atom, func(t *testing.T) {
			got, err := newEncoder(nil).atom(tt.atom).crlf().done()
			if !errors.Is(err, tt.err) {
				t.Fatalf("err %v, want %v", err, tt.err)
			}
			if err == nil && string(got[0].data) != tt.atom+"\r\n" {
				t.Fatalf("got %q", got[0].data)
			}
		})
	}
}

// decodeOneLogin parses an encoded command with the front-end's own
// decoder, an implementation independent of the encoder, and requires
// exactly one LOGIN command and nothing after it.
func decodeOneLogin(chunks []chunk) (user, password string, err error) {
	var all []byte
	for _, c := range chunks {
		all = append(all, c.data...)
	}
	d := newDecoder(bufio.NewReader(bytes.NewReader(all)), len(all)+64, func() error { return nil })
	d.begin()
	if _, err := d.tag(); err != nil {
		return "", "", fmt.Errorf("tag: %w", err)
	}
	if name, err := d.commandName(); err != nil || name != "LOGIN" {
		return "", "", fmt.Errorf("command %q: %v", name, err)
	}
	if err := d.sp(); err != nil {
		return "", "", err
	}
	if user, err = d.astring(); err != nil {
		return "", "", fmt.Errorf("user: %w", err)
	}
	if err := d.sp(); err != nil {
		return "", "", err
	}
	if password, err = d.astring(); err != nil {
		return "", "", fmt.Errorf("password: %w", err)
	}
	if err := d.crlf(); err != nil {
		return "", "", fmt.Errorf("end of command: %w", err)
	}
	if rest, _ := io.ReadAll(d.r); len(rest) > 0 {
		return "", "", fmt.Errorf("%q follows the command", rest)
	}
	return user, password, nil
}

func assertOneLogin(t testing.TB, chunks []chunk, user, password string) {
	t.Helper()
	gotUser, gotPassword, err := decodeOneLogin(chunks)
	if err != nil {
		t.Fatalf("decode %s: %v", showChunks(chunks), err)
	}
	if gotUser != user || gotPassword != password {
		t.Fatalf("decoded %q / %q, want %q / %q", gotUser, gotPassword, user, password)
	}
	for i, c := range chunks {
		if last := i == len(chunks)-1; c.wait == last {
			t.Fatalf("chunk %d of %d: wait=%v", i, len(chunks), c.wait)
		}
	}
}

func showChunks(chunks []chunk) string {
	var b strings.Builder
	for _, c := range chunks {
		fmt.Fprintf(&b, "%q wait=%v\n", c.data, c.wait)
	}
	return b.String()
}
