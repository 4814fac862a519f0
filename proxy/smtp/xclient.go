package smtp

import (
	"errors"
	"github.com/postern-dev/postern/internal/safetext"
	"strconv"
	"strings"

	"github.com/postern-dev/postern/proxy"
)

// maxCommandLine bounds a command line postern sends or lets through:
// Postfix's line_length_limit default. RFC 5321 §4.5.3.1.4 allows 512
// octets, extensions more.
const maxCommandLine = 2048

var (
	errUnsafeArgument = errors.New("smtp: unsafe command argument")
	errNoLoginAttr    = errors.New("the upstream's XCLIENT does not take LOGIN")
)

// unavailable is XCLIENT's value for an attribute the proxy does not know.
const unavailable = "[UNAVAILABLE]"

// xclientAttr is one attribute of an XCLIENT command.
type xclientAttr struct{ name, value string }

// xclientCommand tells the upstream who logged in and from where
// (Postfix's XCLIENT_README), with the attributes it offers (the
// parameters of its XCLIENT EHLO line) in a fixed order. LOGIN must be
// among them: it is the point.
func xclientCommand(user string, info proxy.ClientInfo, offered string) ([]byte, error) {
	offer := strings.Fields(strings.ToUpper(offered))
	if !containsWord(offer, "LOGIN") {
		return nil, errNoLoginAttr
	}
	addr, port := unavailable, unavailable
	if info.Addr.IsValid() {
		a := info.Addr.Addr().Unmap().WithZone("")
		addr, port = a.String(), strconv.Itoa(int(info.Addr.Port()))
		if a.Is6() {
			addr = "IPV6:" + addr
		}
	}
	hello := info.Hello
	if !validDomain(hello) {
		hello = unavailable
	}
	var attrs []xclientAttr
	for _, a := range []xclientAttr{
		{"LOGIN", user}, {"ADDR", addr}, {"PORT", port}, {"NAME", unavailable}, {"HELO", hello}, {"PROTO", "ESMTP"},
	} {
		if containsWord(offer, a.name) {
			attrs = append(attrs, a)
		}
	}
	return encodeXClient(attrs)
}

func containsWord(words []string, w string) bool {
	for _, x := range words {
		if x == w {
			return true
		}
	}
	return false
}

// encodeXClient is the only way the XCLIENT command is built: attribute
// names of upper-case letters and "_", each value xtext-encoded (RFC 3461
// §4), so that the result is exactly one command with exactly these
// attributes. A value with CR, LF or NUL is refused rather than encoded: it
// never reaches the upstream in any form (P4).
func encodeXClient(attrs []xclientAttr) ([]byte, error) {
	if len(attrs) == 0 {
		return nil, errUnsafeArgument
	}
	var b strings.Builder
	b.WriteString("XCLIENT")
	for _, a := range attrs {
		if !validAttrName(a.name) || a.value == "" || safetext.BreaksCommand(a.value) {
			return nil, errUnsafeArgument
		}
		b.WriteString(" " + a.name + "=" + xtext(a.value))
	}
	b.WriteString("\r\n")
	if b.Len() > maxCommandLine {
		return nil, errUnsafeArgument
	}
	return []byte(b.String()), nil
}

func validAttrName(n string) bool {
	if n == "" {
		return false
	}
	for i := 0; i < len(n); i++ {
		if !('A' <= n[i] && n[i] <= 'Z') && n[i] != '_' {
			return false
		}
	}
	return true
}

// xtext encodes s (RFC 3461 §4): bytes from "!" to "~" stand for
// themselves except "+" and "=", everything else is "+" and two upper-case
// hex digits.
func xtext(s string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '!' || c > '~' || c == '+' || c == '=' {
			b.WriteByte('+')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&0xf])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}
