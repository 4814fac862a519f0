package imap

import (
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// status is one IMAP status response (RFC 9051 section 7.1) as a value, so
// that every answer postern gives is written down once, here.
type status struct {
	kind string // OK, NO, BAD, BYE
	code string // response code without brackets; may be empty
	text string
}

// line renders the response for tag; an empty tag gives the untagged form.
// No field ever holds bytes the client sent, except a tag made only of
// tagChar bytes (ALPACA: nothing reflected can carry markup).
func (s status) line(tag string) string {
	if tag == "" {
		tag = "*"
	}
	var b strings.Builder
	b.WriteString(tag)
	b.WriteByte(' ')
	b.WriteString(s.kind)
	b.WriteByte(' ')
	if s.code != "" {
		b.WriteByte('[')
		b.WriteString(s.code)
		b.WriteString("] ")
	}
	b.WriteString(s.text)
	b.WriteString("\r\n")
	return b.String()
}

// clientError is a fault in what the client sent. It is answered (see
// answerFor) and counted against the client's bad-command budget; any other
// error from the connection ends the session.
type clientError struct{ msg string }

func (e *clientError) Error() string { return e.msg }

// Faults a pre-auth command can end with; answerFor maps each to its answer.
var (
	errSyntax          = &clientError{"imap: syntax error"}
	errBadTag          = &clientError{"imap: invalid tag"}
	errUnknownCommand  = &clientError{"imap: unknown command"}
	errLineTooLong     = &clientError{"imap: line too long"}
	errLiteralTooLarge = &clientError{"imap: literal too large"}
	errNonSyncTooLarge = &clientError{"imap: non-synchronising literal too large"}
	errPrivacyRequired = &clientError{"imap: TLS required before credentials"}
	errNoStartTLS      = &clientError{"imap: STARTTLS not available"}
	errCancelled       = &clientError{"imap: authentication cancelled"}
	errMechanism       = &clientError{"imap: unsupported SASL mechanism"}
)

// Ends of a pre-auth dialogue that are not faults to answer. A LOGOUT wraps
// io.EOF: the client left, as if it had closed the connection.
var (
	errTooManyBad = errors.New("imap: too many invalid commands")
	errLogout     = fmt.Errorf("imap: client logged out: %w", io.EOF)
)

var (
	ansUnavailable = status{"NO", "UNAVAILABLE", "Temporary failure, try again later"}
	ansPrivacy     = status{"NO", "PRIVACYREQUIRED", "TLS is required to log in: use STARTTLS or the TLS port"}
	ansSyntax      = status{"BAD", "", "Syntax error"}
	ansBadTag      = status{"BAD", "", "Invalid tag"}
	ansUnknown     = status{"BAD", "", "Unknown command or not allowed before login"}
	ansLiteral     = status{"BAD", "", "Literal too large"}
	ansNoStartTLS  = status{"BAD", "", "STARTTLS is not available on this connection"}
	ansCancelled   = status{"BAD", "", "Authentication cancelled"}
	ansMechanism   = status{"NO", "", "Unsupported authentication mechanism"}
	ansLineTooLong = status{"BYE", "", "Line too long"}
	ansNonSync     = status{"BYE", "", "Literal too large"}
	ansTooManyBad  = status{"BYE", "", "Too many invalid commands"}
	ansStartTLS    = status{"OK", "", "Begin TLS negotiation now"}
	ansLogout      = status{"BYE", "", "Logging out"}
	ansLogoutDone  = status{"OK", "", "LOGOUT completed"}
	ansCapDone     = status{"OK", "", "CAPABILITY completed"}
	ansNoopDone    = status{"OK", "", "NOOP completed"}
	ansIDDone      = status{"OK", "", "ID completed"}
)

// idAnswer is the untagged ID response: the product name only, no version
// to fingerprint.
const idAnswer = "* ID (\"name\" \"postern\")\r\n"

// loggedIn is the answer to a successful login: the upstream's post-login
// capabilities, so clients need not ask again (RFC 9051 section 7.1).
func loggedIn(caps []string) status {
	var valid []string
	for _, c := range caps {
		if capabilityAtom(c) {
			valid = append(valid, c)
		}
	}
	if len(valid) == 0 {
		return status{"OK", "", "Logged in"}
	}
	return status{"OK", "CAPABILITY " + strings.Join(valid, " "), "Logged in"}
}

// graceAlert warns a user who logged in with the account password during
// the organisation's grace period (RFC 9051 ALERT: clients show it).
func graceAlert(until time.Time, accountURL string) status {
	text := "Two-step verification will be required from " + until.UTC().Format(time.DateOnly)
	if accountURL != "" {
		text += ": create an app password at " + accountURL
	} else {
		text += ": create an app password"
	}
	return status{"OK", "ALERT", text}
}

// bye tells the client why the session ends, with the RFC 5530 code of
// the reason's kind; the words are the proxy's own, stripped of anything
// that could end the line early.
func bye(reason proxy.Reason, accountURL string) status {
	return status{"BYE", byeCode(reason.Kind), safetext.OneLine(reason.Words(accountURL), "")}
}

// byeCode: EXPIRED says the credential no longer works (get a new one),
// CONTACTADMIN that the account is out of the user's hands, UNAVAILABLE
// that logging in again shortly will work; a plain end carries no code.
func byeCode(k proxy.ReasonKind) string {
	switch k {
	case proxy.Unavailable:
		return "UNAVAILABLE"
	case proxy.CredentialGone:
		return "EXPIRED"
	case proxy.AccountGone:
		return "CONTACTADMIN"
	}
	return ""
}

// failureAnswer is the single answer for every credential problem; its bytes
// must not depend on what went wrong (A9).
func failureAnswer(accountURL string) status {
	return status{"NO", "AUTHENTICATIONFAILED", proxy.FailureHint("Mail apps", accountURL)}
}

// answerFor is the one mapping from an error to what the client is told.
// Credential problems share the failure answer; everything the proxy cannot
// decide becomes UNAVAILABLE, never "wrong password" (P6).
func (p *Protocol) answerFor(err error) status {
	switch {
	case errors.Is(err, authstore.ErrUnauthorized):
		return p.failure
	case errors.Is(err, authstore.ErrUnavailable), errors.Is(err, proxy.ErrUpstream):
		return ansUnavailable
	case errors.Is(err, errBadTag):
		return ansBadTag
	case errors.Is(err, errUnknownCommand):
		return ansUnknown
	case errors.Is(err, errLiteralTooLarge):
		return ansLiteral
	case errors.Is(err, errNonSyncTooLarge):
		return ansNonSync
	case errors.Is(err, errLineTooLong):
		return ansLineTooLong
	case errors.Is(err, errPrivacyRequired):
		return ansPrivacy
	case errors.Is(err, errNoStartTLS):
		return ansNoStartTLS
	case errors.Is(err, errCancelled):
		return ansCancelled
	case errors.Is(err, errMechanism):
		return ansMechanism
	case errors.Is(err, errSyntax):
		return ansSyntax
	}
	return ansUnavailable
}

// fatal reports whether the client stream can no longer be framed after err,
// so the connection must close after the answer.
func fatal(err error) bool {
	return errors.Is(err, errLineTooLong) || errors.Is(err, errNonSyncTooLarge)
}
