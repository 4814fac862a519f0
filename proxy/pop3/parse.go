package pop3

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"strings"

	"github.com/postern-dev/postern/proxy"
)

// errLineTooLong reports a line longer than Config.MaxLine, from the client
// or from the upstream. The reader stops at the limit instead of buffering
// the rest, so a peer that never sends LF costs at most one limit of memory.
var errLineTooLong = errors.New("pop3: line too long")

// errMalformed marks SASL data that is not valid base64 or not a PLAIN
// message. It never carries the data itself.
var errMalformed = errors.New("pop3: malformed authentication data")

// maxKeyword bounds a command keyword. RFC 2449 keywords are 3 or 4
// characters; a little slack keeps extensions such as XCLIENT parseable while
// an HTTP header name or binary junk still fails fast.
const maxKeyword = 16

// readLine returns the next line without its CRLF (a bare LF is accepted, as
// most servers do). max bounds the line including its terminator. It looks
// at whatever has arrived rather than waiting for a full buffer, so a line
// without LF fails as soon as it passes max. The result is a fresh copy the
// caller owns.
func readLine(r *bufio.Reader, max int) ([]byte, error) {
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
			return nil, errLineTooLong
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

// command is one parsed client line: an upper-cased keyword and everything
// after the first space. USER and PASS take the rest of the line verbatim
// because RFC 1939 §7 lets a password contain spaces (app passwords are
// shown in groups separated by spaces).
type command struct {
	name string
	arg  string
}

// parseCommand splits a line into keyword and argument. It reports false for
// an empty line or a keyword that is not a short run of ASCII letters.
func parseCommand(line []byte) (command, bool) {
	name, arg, _ := bytes.Cut(line, []byte(" "))
	if len(name) == 0 || len(name) > maxKeyword {
		return command{}, false
	}
	for _, b := range name {
		if !isASCIILetter(b) {
			return command{}, false
		}
	}
	return command{name: strings.ToUpper(string(name)), arg: string(arg)}, true
}

func isASCIILetter(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}

// decodeSASL decodes one client response of an AUTH exchange (RFC 5034 §4).
// A lone "=" is the empty response, as in an initial response.
func decodeSASL(s string) ([]byte, error) {
	if s == "=" {
		return []byte{}, nil
	}
	b, err := proxy.DecodeSASL(s)
	if err != nil {
		return nil, errMalformed
	}
	return b, nil
}

// plainMessage is a decoded SASL PLAIN message (RFC 4616 §2).
type plainMessage struct {
	authzid, authcid, password string
}

// parsePlain splits authzid NUL authcid NUL passwd. Exactly two NULs are
// allowed: a third would make the password ambiguous.
func parsePlain(msg []byte) (plainMessage, error) {
	authzid, authcid, password, err := proxy.ParsePlain(msg)
	if err != nil {
		return plainMessage{}, fmt.Errorf("plain message: %w: %w", errMalformed, err)
	}
	return plainMessage{authzid: authzid, authcid: authcid, password: password}, nil
}
