package smtp

import (
	"errors"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// Fixed replies, with RFC 3463 enhanced codes. None of them quotes what the
// client sent (P7: an echoed request lets a cross-protocol
// attacker script the answer).
const (
	replyOK           = "250 2.0.0 OK"
	replyBye          = "221 2.0.0 Bye"
	replyReadyTLS     = "220 2.0.0 Ready to start TLS"
	replyAuthOK       = "235 2.7.0 Authentication successful"
	replyContinue     = "334 "
	replyAuthRequired = "530 5.7.0 Authentication required"
	// RFC 3207 §4: AUTH before STARTTLS, where policy demands TLS. Nothing
	// was judged, so nothing is charged (P1).
	replyTLSRequired = "530 5.7.0 Must issue a STARTTLS command first"
	replyTempFail    = "454 4.7.0 Temporary authentication failure, try again later"
	replySyntax      = "500 5.5.2 Syntax error"
	replyParams      = "501 5.5.4 Syntax error in parameters"
	replyHelloSyntax = "501 5.5.4 Syntax: EHLO hostname"
	replyHelloFirst  = "503 5.5.1 Send EHLO first"
	replyHaveTLS     = "503 5.5.1 TLS already active"
	replyNoTLS       = "502 5.5.1 STARTTLS not available"
	replyMechanism   = "504 5.5.4 Unrecognized authentication type"
	replyCanceled    = "501 5.7.0 Authentication canceled"
	replyBadSASL     = "501 5.5.2 Cannot decode response"
	replyLineTooLong = "500 5.5.2 Line too long"
	replyTooManyBad  = "421 4.7.0 Too many errors"
	// byeCode starts every goodbye: RFC 5321 §3.8 asks a server that must
	// close to say 421 first.
	byeCode = "421 4.7.0 "
)

// mechanisms are the SASL mechanisms offered once the connection is
// protected; both carry a plain password, so never before TLS.
const mechanisms = "AUTH PLAIN LOGIN"

// failureReply is the one answer for every credential problem
// (A9): unknown user, wrong or malformed secret, throttling, refused
// authzid. RFC 4954 §6 names 535 5.7.8 for them; the second line tells a
// person what to do.
func failureReply(accountURL string) []string {
	return []string{"535-5.7.8 Authentication credentials invalid", "535 5.7.8 " + proxy.AppPasswordHint("Mail apps", accountURL)}
}

// rejectReply maps a failed login to its answer. Only a credential decision
// earns 535; a store or upstream failure, or anything unexpected, says "try
// later" (RFC 4954 §6: 454 4.7.0) so that users do not change a password
// that was fine (P6).
func rejectReply(err error, failure []string) []string {
	switch {
	case errors.Is(err, authstore.ErrUnavailable), errors.Is(err, proxy.ErrUpstream):
		return []string{replyTempFail}
	case errors.Is(err, authstore.ErrUnauthorized):
		return failure
	}
	return []string{replyTempFail}
}

// acceptReply answers a successful login.
func acceptReply(g authstore.Grant, accountURL string) string {
	return proxy.LoggedIn(replyAuthOK, g, accountURL)
}

// byeReply tells a client why its session ends, on one line within RFC
// 5321's 512 octets (§4.5.3.1.5).
func byeReply(reason proxy.Reason, accountURL string) string {
	return byeCode + proxy.ByeLine(reason, accountURL, maxReplyLine-len(byeCode))
}

// maxReplyLine is RFC 5321's bound on a reply line without its CRLF.
const maxReplyLine = 510
