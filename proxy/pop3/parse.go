package pop3

import (
	"bufio"

	"github.com/postern-dev/postern/proxy"
)

// errLineTooLong reports a line longer than Config.MaxLine, from the client
// or from the upstream.
var errLineTooLong = proxy.ErrLineTooLong

// maxKeyword bounds a command keyword.
const maxKeyword = proxy.MaxKeyword

// readLine reads one line of at most max bytes, terminator included.
func readLine(r *bufio.Reader, max int) ([]byte, error) { return proxy.ReadLine(r, max) }

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
	name, arg, ok := proxy.SplitCommand(line)
	return command{name: name, arg: arg}, ok
}

func isASCIILetter(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z'
}
