package proxy

import "github.com/postern-dev/postern/authstore"

// Reason is why a session ends, as its owner is told in the front-end's
// goodbye (IMAP BYE, POP3 -ERR). Text says what happened in words a person
// understands and never more than the account's owner may know; Kind lets
// each protocol choose its response code.
type Reason struct {
	Kind ReasonKind
	Text string
	// Renew, when set, is what the owner can do on the account page
	// ("make a new one"); Words then points there.
	Renew string
}

// ReasonKind sorts reasons by what logging in again would do.
type ReasonKind int

const (
	// Ended: logging in again works (idle, an administrator ended it, a
	// two-step reset).
	Ended ReasonKind = iota
	// Unavailable: the server is going away; try again shortly.
	Unavailable
	// CredentialGone: the credential the session used no longer works.
	CredentialGone
	// AccountGone: the account was disabled or deleted.
	AccountGone
)

// Words is the reason's sentence for a client: the text and, when the
// owner can act on it and there is an account page, where.
func (r Reason) Words(accountURL string) string {
	if r.Renew == "" || accountURL == "" {
		return r.Text
	}
	return r.Text + "; sign in at " + accountURL + " to " + r.Renew
}

// The reasons the proxy itself ends sessions for.
var (
	reasonShutdown   = Reason{Kind: Unavailable, Text: "server shutting down"}
	reasonIdle       = Reason{Text: "idle timeout"}
	reasonLogin      = Reason{Text: "login timeout"}
	reasonExpired    = Reason{Kind: CredentialGone, Text: "this app password expired", Renew: "make a new one"}
	reasonGraceEnded = Reason{Kind: CredentialGone, Text: "two-step verification is now required and mail apps need an app password", Renew: "make one"}
)

// revocationReason tells the owner what credential change ended the
// session.
func revocationReason(c authstore.Cause) Reason {
	switch c {
	case authstore.CauseAppPasswordRevoked:
		return Reason{Kind: CredentialGone, Text: "this app password was revoked", Renew: "make a new one"}
	case authstore.CausePasswordChanged:
		return Reason{Kind: CredentialGone, Text: "the account password was changed"}
	case authstore.CauseAppPasswordsRevoked:
		return Reason{Kind: CredentialGone, Text: "the account password was changed and every app password revoked", Renew: "make a new app password"}
	case authstore.CauseDisabled:
		return Reason{Kind: AccountGone, Text: "this account was disabled"}
	case authstore.CauseDeleted:
		return Reason{Kind: AccountGone, Text: "this account was deleted"}
	case authstore.CauseMFAReset:
		return Reason{Text: "two-step verification was reset; log in again"}
	case authstore.CauseMFAEnabled:
		return Reason{Kind: CredentialGone, Text: "two-step verification was turned on and mail apps need an app password", Renew: "make one"}
	case authstore.CauseMFARequired:
		return reasonGraceEnded
	}
	return Reason{Text: "session ended after a change to the account"}
}
