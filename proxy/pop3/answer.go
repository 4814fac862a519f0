package pop3

import (
	"errors"
	"strings"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// Fixed replies. None of them quotes what the client sent (P7:
// an echoed request lets a cross-protocol attacker script the answer).
const (
	replyGreeting    = "+OK postern ready"
	replyOK          = "+OK"
	replyBye         = "+OK bye"
	replyLoggedIn    = "+OK Logged in"
	replyBeginTLS    = "+OK Begin TLS negotiation"
	replyCapaHead    = "+OK Capability list follows"
	replyMechHead    = "+OK Mechanisms follow"
	replyContinue    = "+ "
	replyLoginUser   = "+ VXNlcm5hbWU6" // base64("Username:"), what LOGIN clients expect
	replyLoginPass   = "+ UGFzc3dvcmQ6" // base64("Password:")
	replyUnknown     = "-ERR Unknown command"
	replySyntax      = "-ERR Syntax error"
	replyUserFirst   = "-ERR USER first"
	replyHaveTLS     = "-ERR Already using TLS"
	replyNoTLS       = "-ERR STLS not available"
	replyMechanism   = "-ERR Unsupported mechanism"
	replyCanceled    = "-ERR Authentication canceled"
	replyBadSASL     = "-ERR Invalid authentication data"
	replyLineTooLong = "-ERR Line too long"
	replyTooManyBad  = "-ERR Too many bad commands"
	// RFC 3206 SYS/PERM rather than AUTH: nothing is wrong with the
	// credential (none was checked), and repeating it on this channel cannot
	// succeed; the user must fix the account's security setting, which is
	// what SYS/PERM asks clients to tell them. AUTH would read as "wrong
	// password" and invite a retype.
	replyTLSRequired = "-ERR [SYS/PERM] TLS required"
	replyTempFail    = "-ERR [SYS/TEMP] Temporary failure, try again later"
)

// mechanisms are the SASL mechanisms offered once the connection is
// protected; both carry a plain password, so never before TLS.
var mechanisms = []string{"PLAIN", "LOGIN"}

// capabilities lists what CAPA announces (RFC 2449 §5). Before TLS nothing
// that would carry a credential is offered, so a compliant client upgrades
// first instead of trying and failing. PIPELINING is not announced: pre-auth
// replies are written one command at a time.
func capabilities(secure, canSTLS bool) []string {
	var caps []string
	if canSTLS {
		caps = append(caps, "STLS")
	}
	if secure {
		caps = append(caps, "USER", "SASL "+strings.Join(mechanisms, " "))
	}
	return append(caps, "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION postern")
}

// failureReply is the one answer for every credential problem (A9):
// unknown user, wrong or malformed secret, throttling, refused authzid.
func failureReply(accountURL string) string {
	return "-ERR [AUTH] " + proxy.FailureHint("Mail apps", accountURL)
}

// rejectReply maps a failed login to its answer. Only a credential decision
// earns [AUTH]; a store or upstream failure, or anything unexpected, says
// "try later" so that users do not change a password that was fine (P6).
func rejectReply(err error, failure string) string {
	switch {
	case errors.Is(err, authstore.ErrUnavailable), errors.Is(err, proxy.ErrUpstream):
		return replyTempFail
	case errors.Is(err, authstore.ErrUnauthorized):
		return failure
	default:
		return replyTempFail
	}
}

// acceptReply answers a successful login. POP3 has no ALERT, so the grace
// warning rides on the +OK line.
func acceptReply(g authstore.Grant, accountURL string) string {
	return proxy.LoggedIn(replyLoggedIn, g, accountURL)
}

// byeReply tells a client why its session ends, with the RFC 3206 code
// of the reason's kind. The words come from our own code, but they are
// still forced onto one line within RFC 2449's 512 octets; the account
// page is left out rather than cut.
func byeReply(reason proxy.Reason, accountURL string) string {
	line := "-ERR [" + byeCode(reason.Kind) + "] "
	return line + proxy.ByeLine(reason, accountURL, maxResponse-len(line))
}

// maxResponse is RFC 2449's bound on a response line without its CRLF.
const maxResponse = 510

// byeCode: AUTH says the credential no longer works, SYS/PERM that the
// account needs an administrator; anything else is SYS/TEMP (log in again).
func byeCode(k proxy.ReasonKind) string {
	switch k {
	case proxy.CredentialGone:
		return "AUTH"
	case proxy.AccountGone:
		return "SYS/PERM"
	}
	return "SYS/TEMP"
}
