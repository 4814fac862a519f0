package smtp

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
)

// Why the guard ends a session. None quotes the client's bytes beyond a
// command name from a fixed list.
var (
	errNotRelayed    = errors.New("command not relayed")
	errBareLine      = errors.New("bare CR or LF, or NUL, in a command line")
	errLongCommand   = errors.New("command line too long")
	errPipelinedData = errors.New("bytes sent after DATA before its reply")
	errDataEnd       = errors.New("message data ended other than by CRLF.CRLF")
	errBDAT          = errors.New("BDAT the upstream may read differently")
	errLostCount     = errors.New("an upstream reply postern did not expect")
	errUpstreamReply = errors.New("malformed upstream reply")
)

// notRelayed are the commands that could change who the upstream thinks
// is sending: XCLIENT and XFORWARD name a client (Postfix honours them from
// any client address in its authorized hosts, and a client of postern may
// well be in them), AUTH another user, STARTTLS would hide everything that
// follows from the guard.
var notRelayed = []string{"XCLIENT", "XFORWARD", "AUTH", "STARTTLS"}

// guard sits between the client and the relay after login. The upstream
// trusts postern to say who is sending, so a client command that could
// change that must never reach it. The guard follows the client's stream
// as the upstream reads it (command lines, message data after a 354, BDAT
// chunks) and ends the session at the first such command, and at anything
// the upstream might read differently from the guard: a bare CR or LF or a
// NUL in a command line, an over-long one, bytes sent after DATA before its
// reply (RFC 2920 §3.1 forbids them), an end of data other than CRLF.CRLF
// (the SMTP smuggling trick), a BDAT not exactly "BDAT <size> [LAST]" or to
// an upstream without CHUNKING. Legitimate clients do none of these (RFC
// 5321 §2.3.8, §4.1.1.4).
//
// Where message data starts depends on the upstream's reply to DATA, so the
// guard counts replies: one per command line, in order (RFC 2920). A 354 or
// a 334 it did not expect means it lost count, and ends the session too.
//
// Read runs only in the relay's client-to-upstream pump and Write only in
// the upstream-to-client one; what both touch is under mu.
type guard struct {
	net.Conn
	log      *slog.Logger
	chunking bool
	pending  []byte // read ahead before the relay, delivered first

	// Client side, Read's alone.
	mode      mode
	line      [64]byte // the start of the command line being read
	lineLen   int
	sawCR     bool
	chunkLeft int64
	data      dataScanner
	idle      atomic.Bool // between commands, for Bye

	// Upstream side, Write's alone.
	reply      [4]byte // the start of the reply line being read
	replyLen   int
	upstreamAt atomic.Bool // at the start of a reply line, for Bye

	mu        sync.Mutex
	sent      int // command lines passed on, each owed one reply
	replied   int // replies seen
	awaiting  int // the number of a DATA owed its reply; 0 for none
	dataReply int // the code of that reply, once seen
}

// mode is where the client's stream is, as the upstream reads it.
type mode uint8

const (
	modeCommand mode = iota
	modeAwait        // DATA sent, its reply not yet seen by the client
	modeData
	modeChunk
)

func newGuard(c net.Conn, pending []byte, chunking bool, log *slog.Logger) *guard {
	g := &guard{Conn: c, log: log, chunking: chunking, pending: bytes.Clone(pending)}
	g.idle.Store(true)
	g.upstreamAt.Store(true)
	return g
}

// Read passes on what the client sent once the guard has followed it.
func (g *guard) Read(p []byte) (int, error) {
	var n int
	var err error
	if len(g.pending) > 0 {
		n = copy(p, g.pending)
		if g.pending = g.pending[n:]; len(g.pending) == 0 {
			g.pending = nil
		}
	} else {
		n, err = g.Conn.Read(p)
	}
	if n == 0 {
		return 0, err
	}
	if verr := g.follow(p[:n]); verr != nil {
		g.log.Warn("smtp session ended: the client sent what postern does not relay", "reason", verr.Error())
		return 0, verr
	}
	return n, err
}

// Write passes the upstream's replies to the client, counting them first:
// nothing reaches the client before the guard knows what it answers.
func (g *guard) Write(p []byte) (int, error) {
	if err := g.count(p); err != nil {
		g.log.Warn("smtp session ended: the upstream's replies lost their order", "reason", err.Error())
		return 0, err
	}
	return g.Conn.Write(p)
}

// CloseWrite passes the relay's half-close on.
func (g *guard) CloseWrite() error {
	if cw, ok := g.Conn.(interface{ CloseWrite() error }); ok {
		return cw.CloseWrite()
	}
	return nil
}

// betweenCommands reports whether a 421 now reads as a reply to the
// client: it is not sending a message, and no reply is half written.
func (g *guard) betweenCommands() bool {
	if !g.idle.Load() || !g.upstreamAt.Load() {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.awaiting == 0 || g.dataReply != 354
}

// follow moves the client side through b.
func (g *guard) follow(b []byte) error {
	for len(b) > 0 {
		n, err := g.step(b)
		if err != nil {
			return err
		}
		b = b[n:]
	}
	g.idle.Store(g.mode == modeCommand && g.lineLen == 0 && !g.sawCR || g.mode == modeAwait)
	return nil
}

// step consumes a prefix of b in the current mode.
func (g *guard) step(b []byte) (int, error) {
	switch g.mode {
	case modeAwait:
		return 0, g.dataReplied()
	case modeData:
		n, end, err := g.data.scan(b)
		if end {
			g.mode = modeCommand
			g.owe() // the message's own reply
		}
		return n, err
	case modeChunk:
		n := int(min(int64(len(b)), g.chunkLeft))
		if g.chunkLeft -= int64(n); g.chunkLeft == 0 {
			g.mode = modeCommand
		}
		return n, nil
	}
	return g.commandBytes(b)
}

// dataReplied leaves modeAwait on the client's first byte after DATA,
// which it may only send once it read the reply.
func (g *guard) dataReplied() error {
	g.mu.Lock()
	code := g.dataReply
	if code != 0 {
		g.awaiting, g.dataReply = 0, 0
	}
	g.mu.Unlock()
	switch code {
	case 0:
		return errPipelinedData
	case 354:
		g.mode = modeData
		g.data = newDataScanner()
	default:
		g.mode = modeCommand
	}
	return nil
}

// commandBytes follows a command line up to its end, which must be CRLF.
func (g *guard) commandBytes(b []byte) (int, error) {
	for i, c := range b {
		switch {
		case g.sawCR && c != '\n', c == 0:
			return 0, errBareLine
		case c == '\r':
			g.sawCR = true
			continue
		case c == '\n':
			if !g.sawCR {
				return 0, errBareLine
			}
			g.sawCR = false
			return i + 1, g.endCommand()
		}
		if g.lineLen < len(g.line) {
			g.line[g.lineLen] = c
		}
		if g.lineLen++; g.lineLen > maxCommandLine {
			return 0, errLongCommand
		}
	}
	return len(b), nil
}

// endCommand acts on a complete command line before its LF is passed on.
func (g *guard) endCommand() error {
	line := g.line[:min(g.lineLen, len(g.line))]
	full := g.lineLen <= len(g.line)
	g.lineLen = 0
	verb := commandVerb(line)
	for _, v := range notRelayed {
		if verb == v {
			return fmt.Errorf("%w: %s", errNotRelayed, v)
		}
	}
	n := g.owe()
	switch verb {
	case "DATA":
		g.mu.Lock()
		g.awaiting, g.dataReply = n, 0
		g.mu.Unlock()
		g.mode = modeAwait
	case "BDAT":
		size, ok := parseBDAT(line)
		if !ok || !full || !g.chunking {
			return errBDAT
		}
		if size > 0 {
			g.mode, g.chunkLeft = modeChunk, size
		}
	}
	return nil
}

// owe notes one more reply owed and returns its number.
func (g *guard) owe() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.sent++
	return g.sent
}

// commandVerb is the first word of a command line, upper-cased, as a
// tolerant server splits it: after any leading white space, up to the next.
func commandVerb(line []byte) string {
	isSpace := func(r rune) bool { return r == ' ' || r == '\t' || r == '\v' || r == '\f' }
	fields := bytes.FieldsFunc(line, isSpace)
	if len(fields) == 0 {
		return ""
	}
	return string(bytes.ToUpper(fields[0]))
}

// parseBDAT reads exactly "BDAT" SP size [SP "LAST"] (RFC 3030 §2), with a
// size the upstream parses the same way: at most 18 digits.
func parseBDAT(line []byte) (int64, bool) {
	parts := bytes.Split(line, []byte(" "))
	if len(parts) < 2 || len(parts) > 3 || len(parts[1]) > 18 || !allDigits(string(parts[1])) {
		return 0, false
	}
	if len(parts) == 3 && !bytes.EqualFold(parts[2], []byte("LAST")) {
		return 0, false
	}
	size, err := strconv.ParseInt(string(parts[1]), 10, 64)
	return size, err == nil
}

// count follows the upstream's replies through b: a reply ends with a line
// whose code is followed by a space or nothing.
func (g *guard) count(b []byte) error {
	for len(b) > 0 {
		i := bytes.IndexByte(b, '\n')
		part := b
		if i >= 0 {
			part = b[:i]
		}
		for _, c := range part {
			if g.replyLen < len(g.reply) {
				g.reply[g.replyLen] = c
			}
			g.replyLen++
		}
		if i < 0 {
			break
		}
		b = b[i+1:]
		if err := g.endReplyLine(); err != nil {
			return err
		}
	}
	g.upstreamAt.Store(g.replyLen == 0)
	return nil
}

// endReplyLine acts on a complete upstream line.
func (g *guard) endReplyLine() error {
	head := g.reply[:min(g.replyLen, len(g.reply))]
	g.replyLen = 0
	code, more, _, err := parseReplyLine(string(bytes.TrimSuffix(head, []byte("\r"))))
	if err != nil {
		return errUpstreamReply
	}
	if more {
		return nil
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.replied == g.sent {
		// Postfix says 421 on its own before it hangs up (a timeout);
		// anything else unasked means the count is off.
		if code == 421 {
			return nil
		}
		return errLostCount
	}
	g.replied++
	switch {
	case g.replied == g.awaiting:
		g.dataReply = code
	case code == 354 || code == 334:
		return errLostCount
	}
	return nil
}

// dataScanner finds the end of message data: CRLF "." CRLF (RFC 5321
// §4.1.1.4). A dot alone between line ends of any other kind (".\n",
// "\n.\r\n", "\r.\r", CRLF "." CR and more) is where upstreams disagree
// (SMTP smuggling), so it is an error rather than data or an end.
type dataScanner struct {
	p1, p2 byte // the last two bytes, p1 the latest
	dot    dotState
}

type dotState uint8

const (
	dotNone     dotState = iota
	dotStart             // a dot right after CR or LF
	dotStartCR           // a dot right after CRLF, then CR
	dotStartBad          // a dot right after a lone CR or LF
)

// newDataScanner starts right after the CRLF that ended DATA.
func newDataScanner() dataScanner { return dataScanner{p2: '\r', p1: '\n'} }

// scan consumes b up to the end of the data, if it is in b.
func (d *dataScanner) scan(b []byte) (n int, end bool, err error) {
	for i := 0; i < len(b); {
		if d.dot == dotNone {
			j := bytes.IndexByte(b[i:], '.')
			if j < 0 {
				d.push(b[i:])
				return len(b), false, nil
			}
			d.push(b[i : i+j])
			d.dot = d.dotAt()
			d.push(b[i+j : i+j+1])
			i += j + 1
			continue
		}
		c := b[i]
		switch {
		case d.dot != dotStartCR && c != '\r' && c != '\n':
			d.dot = dotNone // a line that only starts with a dot
			continue
		case d.dot == dotStart && c == '\r':
			d.dot = dotStartCR
		case d.dot == dotStartCR && c == '\n':
			d.dot = dotNone
			d.push(b[i : i+1])
			return i + 1, true, nil
		default:
			return 0, false, errDataEnd
		}
		d.push(b[i : i+1])
		i++
	}
	return len(b), false, nil
}

// dotAt classifies a dot about to be pushed.
func (d *dataScanner) dotAt() dotState {
	switch {
	case d.p2 == '\r' && d.p1 == '\n':
		return dotStart
	case d.p1 == '\r' || d.p1 == '\n':
		return dotStartBad
	}
	return dotNone
}

// push remembers the last two bytes of b.
func (d *dataScanner) push(b []byte) {
	switch len(b) {
	case 0:
	case 1:
		d.p2, d.p1 = d.p1, b[0]
	default:
		d.p2, d.p1 = b[len(b)-2], b[len(b)-1]
	}
}
