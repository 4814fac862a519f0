package smtp

import (
	"bufio"
	"errors"
	"fmt"
	"strconv"

	"github.com/postern-dev/postern/proxy"
)

// maxReplyLines bounds one upstream reply: an EHLO answer has about a
// dozen lines, and a hostile upstream must cost bounded memory
// (S5).
const maxReplyLines = 100

var (
	errReplySyntax = errors.New("malformed reply")
	errReplyLong   = errors.New("reply has too many lines")
)

// reply is one SMTP reply (RFC 5321 §4.2): its code and the text of each
// line.
type reply struct {
	code int
	text []string
}

// readReply reads one reply: lines "ddd-text" up to a last "ddd text" or
// "ddd", all with the same code, each at most maxLine bytes.
func readReply(r *bufio.Reader, maxLine int) (reply, error) {
	var lines []string
	for len(lines) < maxReplyLines {
		line, err := proxy.ReadLine(r, maxLine)
		if err != nil {
			return reply{}, err
		}
		lines = append(lines, string(line))
		if _, more, _, err := parseReplyLine(string(line)); err != nil || !more {
			return parseReply(lines)
		}
	}
	return reply{}, errReplyLong
}

// parseReply checks the lines of one reply: one code throughout, "-"
// after it on every line but the last.
func parseReply(lines []string) (reply, error) {
	var r reply
	for i, line := range lines {
		code, more, text, err := parseReplyLine(line)
		if err != nil {
			return reply{}, fmt.Errorf("line %d: %w", i+1, err)
		}
		if i > 0 && code != r.code || more == (i == len(lines)-1) { // secret-compare: ok (SMTP reply codes)
			return reply{}, fmt.Errorf("line %d: %w", i+1, errReplySyntax)
		}
		r.code = code
		r.text = append(r.text, text)
	}
	if len(lines) == 0 {
		return reply{}, errReplySyntax
	}
	return r, nil
}

// parseReplyLine splits "ddd-text", "ddd text" or "ddd".
func parseReplyLine(line string) (code int, more bool, text string, err error) {
	if len(line) < 3 || !allDigits(line[:3]) || line[0] < '2' || line[0] > '5' {
		return 0, false, "", errReplySyntax
	}
	code, _ = strconv.Atoi(line[:3])
	if len(line) == 3 {
		return code, false, "", nil
	}
	switch line[3] {
	case '-':
		return code, true, line[4:], nil
	case ' ':
		return code, false, line[4:], nil
	}
	return 0, false, "", errReplySyntax
}
