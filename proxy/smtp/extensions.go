package smtp

import (
	"errors"
	"fmt"
	"maps"
	"strings"
)

// Extensions are the service extensions of an EHLO answer (RFC 5321
// §4.1.1.1): keyword, upper-cased, to its parameters as sent.
type Extensions map[string]string

// errEHLO marks an EHLO answer that is not a 250 reply of keywords.
var errEHLO = errors.New("malformed EHLO answer")

// ParseEHLO reads the extensions from an EHLO answer, given as the lines
// of its reply without CRLF ("250-mail.example.org", "250-PIPELINING",
// "250 SIZE 10240000"). The first line names the server and is skipped.
func ParseEHLO(lines []string) (Extensions, error) {
	r, err := parseReply(lines)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errEHLO, err)
	}
	if r.code != 250 {
		return nil, fmt.Errorf("%w: code %d", errEHLO, r.code)
	}
	return extensionsOf(r.text), nil
}

// extensionsOf reads the keyword lines that follow the server's name. A
// line that is no keyword is left out rather than refused: Postfix adds
// "AUTH=PLAIN LOGIN" for old clients (broken_sasl_auth_clients), and
// nothing postern needs is ever spelled that way.
func extensionsOf(text []string) Extensions {
	ext := Extensions{}
	for _, line := range text[1:] {
		keyword, params, _ := strings.Cut(strings.TrimSpace(line), " ")
		if validKeyword(keyword) {
			ext[strings.ToUpper(keyword)] = params
		}
	}
	return ext
}

// validKeyword: ehlo-keyword = (ALPHA / DIGIT) *(ALPHA / DIGIT / "-").
func validKeyword(k string) bool {
	if k == "" || k[0] == '-' || len(k) > 64 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !isASCIILetter(c) && !isDigit(c) && c != '-' {
			return false
		}
	}
	return true
}

// Has reports whether the upstream lists keyword (upper case).
func (e Extensions) Has(keyword string) bool {
	_, ok := e[keyword]
	return ok
}

func (e Extensions) clone() Extensions { return maps.Clone(e) }

// lines lists the extensions as EHLO keyword lines, for
// proxy.UpstreamResult.
func (e Extensions) lines() []string {
	out := make([]string, 0, len(e))
	for k, v := range e {
		out = append(out, strings.TrimSpace(k+" "+v))
	}
	return out
}

// passedOn are the extensions a client is offered when the upstream has
// them, in the order offered. Each only changes what the client may put
// in MAIL, RCPT or the message after login, which the upstream handles;
// none changes the pre-auth dialogue postern answers itself.
var passedOn = []string{"PIPELINING", "SIZE", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "CHUNKING"}

// offered returns the keyword lines for a client's EHLO answer. SIZE
// carries the upstream's limit when it gave a number; anything else it
// said stays out of the reply (P7 in spirit: no text passed on
// that postern did not check).
func (e Extensions) offered() []string {
	var out []string
	for _, k := range passedOn {
		params, ok := e[k]
		if !ok {
			continue
		}
		if k == "SIZE" && params != "" && len(params) <= 20 && allDigits(params) {
			out = append(out, "SIZE "+params)
			continue
		}
		out = append(out, k)
	}
	return out
}

func allDigits(s string) bool {
	for i := 0; i < len(s); i++ {
		if !isDigit(s[i]) {
			return false
		}
	}
	return s != ""
}

func isDigit(c byte) bool       { return '0' <= c && c <= '9' }
func isASCIILetter(c byte) bool { return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' }
