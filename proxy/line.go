package proxy

import (
	"bufio"
	"bytes"
	"errors"
	"strings"
)

// ErrLineTooLong reports a line longer than its limit, from a client or an
// upstream. ReadLine stops at the limit instead of buffering the rest, so a
// peer that never sends LF costs at most one limit of memory.
var ErrLineTooLong = errors.New("line too long")

// ReadLine returns the next line of a line protocol (POP3, SMTP) without
// its CRLF (a bare LF is accepted, as most servers do). max bounds the line
// including its terminator. It looks at whatever has arrived rather than
// waiting for a full buffer, so a line without LF fails as soon as it
// passes max. The result is a fresh copy the caller owns.
func ReadLine(r *bufio.Reader, max int) ([]byte, error) {
	var line []byte
	for {
		if _, err := r.Peek(1); err != nil {
			return nil, err
		}
		buf, _ := r.Peek(r.Buffered())
		n := bytes.IndexByte(buf, '\n') + 1
		if n == 0 {
			n = len(buf)
		}
		if len(line)+n > max {
			return nil, ErrLineTooLong
		}
		line = append(line, buf[:n]...)
		_, _ = r.Discard(n)
		if line[len(line)-1] == '\n' {
			return trimEOL(line), nil
		}
	}
}

func trimEOL(line []byte) []byte {
	line = bytes.TrimSuffix(line, []byte("\n"))
	return bytes.TrimSuffix(line, []byte("\r"))
}

// MaxKeyword bounds a command keyword of a line protocol. POP3's are 3 or
// 4 characters and SMTP's 4; a little slack keeps extensions such as
// XCLIENT parseable while an HTTP header name or binary junk still fails
// fast.
const MaxKeyword = 16

// SplitCommand splits a command line of POP3 or SMTP into its keyword,
// upper-cased, and everything after the first space, verbatim. It reports
// false for an empty line or a keyword that is not a short run of ASCII
// letters.
func SplitCommand(line []byte) (keyword, arg string, ok bool) {
	name, rest, _ := bytes.Cut(line, []byte(" "))
	if len(name) == 0 || len(name) > MaxKeyword {
		return "", "", false
	}
	for _, b := range name {
		if !('a' <= b && b <= 'z' || 'A' <= b && b <= 'Z') {
			return "", "", false
		}
	}
	return strings.ToUpper(string(name)), string(rest), true
}
