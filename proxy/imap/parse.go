package imap

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// maxNonSyncLiteral is the LITERAL- ceiling (RFC 7888 section 4): larger
// non-synchronising literals must be refused.
const maxNonSyncLiteral = 4096

// decoder reads the pre-auth grammar straight from the connection's buffered
// reader, one byte at a time, so that nothing beyond the current command is
// ever consumed: bytes a client pipelines after STARTTLS stay in the buffer
// the TLS upgrade throws away (P2).
//
// Every read is bounded: a line (the bytes between literals) by maxLine, a
// literal by maxLine, a whole command by maxCommand (P3).
type decoder struct {
	r          *bufio.Reader
	maxLine    int
	maxCommand int
	line       int  // bytes of the current line so far
	total      int  // bytes of the current command so far
	eol        bool // the last byte consumed was a line's LF
	// cont asks the client to send a synchronising literal; an error
	// refuses the literal instead (the client then sends nothing more).
	cont func() error
}

func newDecoder(r *bufio.Reader, maxLine int, cont func() error) *decoder {
	return &decoder{r: r, maxLine: maxLine, maxCommand: 4 * maxLine, cont: cont}
}

// begin starts a new command.
func (d *decoder) begin() {
	d.line, d.total, d.eol = 0, 0, false
}

// nextLine starts a new line of the same command (an AUTHENTICATE
// continuation), keeping the command's total budget.
func (d *decoder) nextLine() {
	d.line, d.eol = 0, false
}

// budget refuses the next byte when the line or the command is full.
func (d *decoder) budget() error {
	if d.line >= d.maxLine || d.total >= d.maxCommand {
		return errLineTooLong
	}
	return nil
}

func (d *decoder) readByte() (byte, error) {
	if err := d.budget(); err != nil {
		return 0, err
	}
	b, err := d.r.ReadByte()
	if err != nil {
		return 0, err
	}
	d.line++
	d.total++
	d.eol = b == '\n'
	return b, nil
}

func (d *decoder) peek() (byte, error) {
	if err := d.budget(); err != nil {
		return 0, err
	}
	b, err := d.r.Peek(1)
	if err != nil {
		return 0, err
	}
	return b[0], nil
}

// skipLine discards the rest of a line after a syntax error, so that the
// next command starts in step. It holds nothing in memory.
func (d *decoder) skipLine() error {
	for !d.eol {
		if _, err := d.readByte(); err != nil {
			return err
		}
	}
	return nil
}

func (d *decoder) expect(want byte) error {
	b, err := d.readByte()
	if err != nil {
		return err
	}
	if b != want {
		return errSyntax
	}
	return nil
}

func (d *decoder) sp() error { return d.expect(' ') }

// crlf ends a line. A bare LF is accepted as well: nothing read here is
// ever forwarded, so leniency cannot smuggle anything.
func (d *decoder) crlf() error {
	b, err := d.readByte()
	if err != nil {
		return err
	}
	if b == '\r' {
		b, err = d.readByte()
		if err != nil {
			return err
		}
	}
	if b != '\n' {
		return errSyntax
	}
	return nil
}

// tagChar is stricter than RFC 9051's tag grammar (any ASTRING-CHAR but
// "+"): punctuation such as "<", ">", "/" and "=" is refused as well, so a
// tag echoed back can never carry markup (ALPACA). Real clients use
// letters, digits and dots.
func tagChar(b byte) bool {
	return isAlnum(b) || b == '.' || b == '-' || b == '_'
}

func isAlnum(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9'
}

// atomChar is ATOM-CHAR of RFC 9051 plus bytes >= 0x80, which some clients
// send unquoted in UTF-8 user names.
func atomChar(b byte) bool {
	if b >= 0x80 {
		return true
	}
	if b <= ' ' || b == 0x7f {
		return false
	}
	switch b {
	case '(', ')', '{', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

// tag reads the command tag and the SP after it.
func (d *decoder) tag() (string, error) {
	tag, err := d.token(tagChar, errBadTag)
	if err != nil {
		return "", err
	}
	if err := d.sp(); err != nil {
		return "", errBadTag
	}
	return tag, nil
}

// commandName reads a command name, case-folded to upper case. A name
// with anything but letters, digits and "-" before the SP or CRLF is not
// IMAP at all (an HTTP request line's "/", say).
func (d *decoder) commandName() (string, error) {
	name, err := d.token(func(b byte) bool { return isAlnum(b) || b == '-' }, errUnknownCommand)
	if err != nil {
		return "", err
	}
	b, err := d.peek()
	if err != nil {
		return "", err
	}
	if b != ' ' && b != '\r' && b != '\n' {
		return "", errUnknownCommand
	}
	return strings.ToUpper(name), nil
}

// token reads 1*ok bytes, stopping before the first other byte; none at
// all gives empty.
func (d *decoder) token(ok func(byte) bool, empty error) (string, error) {
	var buf []byte
	for {
		b, err := d.peek()
		if err != nil {
			return "", err
		}
		if !ok(b) {
			break
		}
		buf = append(buf, b)
		_, _ = d.readByte()
	}
	if len(buf) == 0 {
		return "", empty
	}
	return string(buf), nil
}

// atom reads 1*ATOM-CHAR (plus "]" when astring is set, ASTRING-CHAR).
func (d *decoder) atom(astring bool) (string, error) {
	return d.token(func(b byte) bool { return atomChar(b) || astring && b == ']' }, errSyntax)
}

// astring reads an atom, a quoted string or a literal.
func (d *decoder) astring() (string, error) {
	b, err := d.peek()
	if err != nil {
		return "", err
	}
	switch b {
	case '"':
		return d.quoted()
	case '{':
		return d.literal()
	}
	return d.atom(true)
}

// str reads a quoted string or a literal.
func (d *decoder) str() (string, error) {
	b, err := d.peek()
	if err != nil {
		return "", err
	}
	switch b {
	case '"':
		return d.quoted()
	case '{':
		return d.literal()
	}
	return "", errSyntax
}

// nstring reads NIL or a string; ok is false for NIL.
func (d *decoder) nstring() (s string, ok bool, err error) {
	b, err := d.peek()
	if err != nil {
		return "", false, err
	}
	if b == 'N' || b == 'n' {
		a, err := d.atom(false)
		if err != nil {
			return "", false, err
		}
		if !strings.EqualFold(a, "NIL") {
			return "", false, errSyntax
		}
		return "", false, nil
	}
	s, err = d.str()
	return s, err == nil, err
}

// quoted reads a quoted string (RFC 9051 quoted, with UTF-8 allowed).
// CR, LF and NUL cannot appear in one.
func (d *decoder) quoted() (string, error) {
	if err := d.expect('"'); err != nil {
		return "", err
	}
	var buf []byte
	for {
		b, err := d.readByte()
		if err != nil {
			return "", err
		}
		switch b {
		case '"':
			return string(buf), nil
		case '\\':
			if b, err = d.readByte(); err != nil {
				return "", err
			}
			if b != '"' && b != '\\' {
				return "", errSyntax
			}
		case '\r', '\n', 0:
			return "", errSyntax
		}
		buf = append(buf, b)
	}
}

// literal reads "{" number ["+"] "}" CRLF and then the literal's bytes. The
// size is checked before anything is allocated: "{4294967296}" costs nothing.
func (d *decoder) literal() (string, error) {
	n, nonSync, err := d.literalHeader()
	if err != nil {
		return "", err
	}
	tooLarge := n > d.maxLine || d.total+n > d.maxCommand
	switch {
	case nonSync && (tooLarge || n > maxNonSyncLiteral):
		// The client sends the bytes regardless; the stream cannot be
		// framed again.
		return "", errNonSyncTooLarge
	case tooLarge:
		// The client waits for a continuation that never comes: the
		// line ended with the header and the next command is in step.
		return "", errLiteralTooLarge
	case !nonSync:
		if err := d.cont(); err != nil {
			return "", err
		}
	}
	buf := make([]byte, n)
	if _, err := io.ReadFull(d.r, buf); err != nil {
		return "", fmt.Errorf("read literal: %w", err)
	}
	d.total += n
	d.nextLine()
	return string(buf), nil
}

// literalHeader reads "{" number ["+"] "}" CRLF. A number beyond any limit
// saturates instead of overflowing.
func (d *decoder) literalHeader() (n int, nonSync bool, err error) {
	if err := d.expect('{'); err != nil {
		return 0, false, err
	}
	const ceiling = 1 << 30
	digits := 0
	for {
		b, err := d.readByte()
		if err != nil {
			return 0, false, err
		}
		if '0' <= b && b <= '9' {
			digits++
			if n < ceiling {
				n = n*10 + int(b-'0')
			}
			continue
		}
		if b == '+' {
			nonSync = true
			b, err = d.readByte()
			if err != nil {
				return 0, false, err
			}
		}
		if b != '}' || digits == 0 {
			return 0, false, errSyntax
		}
		break
	}
	if err := d.crlf(); err != nil {
		return 0, false, err
	}
	return n, nonSync, nil
}

// restOfLine reads raw bytes up to the end of the line, without the CRLF
// (an AUTHENTICATE continuation or initial response).
func (d *decoder) restOfLine() ([]byte, error) {
	var buf []byte
	for {
		b, err := d.readByte()
		if err != nil {
			return nil, err
		}
		if b == '\n' {
			if n := len(buf); n > 0 && buf[n-1] == '\r' {
				buf = buf[:n-1]
			}
			return buf, nil
		}
		buf = append(buf, b)
	}
}
