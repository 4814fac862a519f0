package imap

import "strings"

// capabilities lists what this front-end really supports before login
// (RFC 9051 section 6.1.1). Without TLS it offers no way to send a
// credential (LOGINDISABLED, no AUTH=; P1); with TLS it
// advertises IMAP4rev2 only when the upstream last said it speaks it, since
// the client will talk to the upstream after login.
func (p *Protocol) capabilities(secure, canStartTLS bool) string {
	if !secure {
		if canStartTLS {
			return "IMAP4rev1 STARTTLS LOGINDISABLED"
		}
		return "IMAP4rev1 LOGINDISABLED"
	}
	caps := "IMAP4rev1"
	if last := p.upstreamCaps.Load(); last != nil && hasCap(*last, "IMAP4rev2") {
		caps += " IMAP4rev2"
	}
	return caps + " SASL-IR LITERAL- ID AUTH=PLAIN AUTH=LOGIN"
}

// rememberUpstream records the upstream's pre-login capabilities for the
// next clients' CAPABILITY answers.
func (p *Protocol) rememberUpstream(caps []string) {
	c := append([]string(nil), caps...)
	p.upstreamCaps.Store(&c)
}

// hasCap reports whether caps holds name; capability names are
// case-insensitive.
func hasCap(caps []string, name string) bool {
	for _, c := range caps {
		if strings.EqualFold(c, name) {
			return true
		}
	}
	return false
}

// capabilityAtom reports whether s can be echoed as a capability: an atom
// of printable ASCII without specials, so an upstream's answer cannot break
// the line the client gets.
func capabilityAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if b := s[i]; b >= 0x80 || !atomChar(b) {
			return false
		}
	}
	return true
}
