package imap

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/postern-dev/postern/internal/safetext"
)

// errUnencodable refuses a string that must never reach an upstream: CR,
// LF or NUL would let a client end the proxy's command and start its own
// (P4), and atoms are only ever the proxy's own words.
var errUnencodable = errors.New("imap: value cannot be sent upstream")

// chunk is a piece of a command written to the upstream. After a chunk
// with wait set, the server must answer with a continuation ("+") before
// the next chunk is sent: a synchronising literal, or an AUTHENTICATE
// without initial response.
type chunk struct {
	data []byte
	wait bool
}

// encoder builds one upstream command from typed parts, so that no value
// is ever concatenated into the protocol stream unescaped. The first error
// sticks and is reported by done.
type encoder struct {
	chunks []chunk
	cur    []byte
	// literalPlus and literalMinus say which literals the server takes without a
	// continuation: LITERAL+ any, LITERAL- up to 4096 (RFC 7888).
	literalPlus, literalMinus bool
	err                       error
}

// newEncoder returns an encoder for a server with capabilities caps.
func newEncoder(caps []string) *encoder {
	return &encoder{literalPlus: hasCap(caps, "LITERAL+"), literalMinus: hasCap(caps, "LITERAL-")}
}

// atom writes one of the proxy's own words (a tag, a command name).
func (e *encoder) atom(s string) *encoder {
	if s == "" {
		e.fail()
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 || !atomChar(s[i]) {
			e.fail()
		}
	}
	e.cur = append(e.cur, s...)
	return e
}

func (e *encoder) sp() *encoder {
	e.cur = append(e.cur, ' ')
	return e
}

func (e *encoder) special(b byte) *encoder {
	e.cur = append(e.cur, b)
	return e
}

// str writes s as a quoted string, or as a literal when it holds 8-bit
// bytes, which a quoted string may not carry before IMAP4rev2.
func (e *encoder) str(s string) *encoder {
	if safetext.BreaksCommand(s) {
		e.fail()
		return e
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return e.literal(s)
		}
	}
	e.cur = append(e.cur, '"')
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			e.cur = append(e.cur, '\\')
		}
		e.cur = append(e.cur, s[i])
	}
	e.cur = append(e.cur, '"')
	return e
}

func (e *encoder) literal(s string) *encoder {
	e.cur = append(e.cur, '{')
	e.cur = strconv.AppendInt(e.cur, int64(len(s)), 10)
	nonSync := e.literalPlus || e.literalMinus && len(s) <= maxNonSyncLiteral
	if nonSync {
		e.cur = append(e.cur, '+')
	}
	e.cur = append(e.cur, "}\r\n"...)
	if !nonSync {
		e.wait()
	}
	e.cur = append(e.cur, s...)
	return e
}

// base64 writes b in base64 (a SASL response); "=" stands for empty.
func (e *encoder) base64(b []byte) *encoder {
	if len(b) == 0 {
		e.cur = append(e.cur, '=')
		return e
	}
	e.cur = base64.StdEncoding.AppendEncode(e.cur, b)
	return e
}

func (e *encoder) crlf() *encoder {
	e.cur = append(e.cur, "\r\n"...)
	return e
}

// wait ends the current chunk; the server must send a continuation before
// the rest is written.
func (e *encoder) wait() *encoder {
	e.chunks = append(e.chunks, chunk{data: e.cur, wait: true})
	e.cur = nil
	return e
}

func (e *encoder) fail() {
	if e.err == nil {
		e.err = errUnencodable
	}
}

// done returns the command's chunks, or the first error.
func (e *encoder) done() ([]chunk, error) {
	if e.err != nil {
		return nil, e.err
	}
	chunks := e.chunks
	if len(e.cur) > 0 {
		chunks = append(chunks, chunk{data: e.cur})
	}
	return chunks, nil
}
