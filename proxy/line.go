package proxy

import (
	"bufio"
	"bytes"
	"errors"
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
