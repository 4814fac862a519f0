package authstore

import (
	"errors"
	"net/netip"
	"sync"
	"time"
)

// Sentinel errors at the package boundary; front-ends map them to their
// protocol's answer in one place and compare with errors.Is.
var (
	// ErrUnauthorized is the single answer for every credential problem:
	// unknown user, wrong secret, disabled user, revoked or expired app
	// password, account password of a user who must use app passwords, and
	// throttled attempts. Callers must not be able to tell them apart.
	ErrUnauthorized = errors.New("authentication failed")
	// ErrThrottled wraps ErrUnauthorized: callers that only check
	// ErrUnauthorized answer a throttled attempt exactly like a wrong one.
	ErrThrottled = throttledError{}
	// ErrUnavailable means the store could not decide (I/O failure, closed
	// store). Clients must be told to try later, not that the password is wrong.
	ErrUnavailable = errors.New("credential store unavailable")
)

type throttledError struct{}

func (throttledError) Error() string        { return "authentication failed" }
func (throttledError) Is(target error) bool { return target == ErrUnauthorized }

// Protocol names a client protocol; app-password scopes use the same names.
type Protocol string

const (
	IMAP    Protocol = "imap"
	POP3    Protocol = "pop3"
	SMTP    Protocol = "smtp" // submission: sending mail
	CalDAV  Protocol = "caldav"
	CardDAV Protocol = "carddav"
	// ActiveSync is Exchange ActiveSync, which phones speak for mail,
	// calendars and contacts at once.
	ActiveSync Protocol = "activesync"
	Web        Protocol = "web"
	// DAV is the protocol of a DAV request under neither a CalDAV nor a
	// CardDAV path (the server root, a principal): an app password with
	// either scope covers it, since both kinds of client discover through
	// it. It is never a scope of its own.
	DAV Protocol = "dav"
)

// AllScopes are the protocols an app password covers unless limited.
var AllScopes = []Protocol{IMAP, POP3, SMTP, CalDAV, CardDAV, ActiveSync}

// Attempt is one login as a front-end saw it.
type Attempt struct {
	Protocol Protocol
	Username string
	Secret   string
	Source   netip.Addr
	Client   string // IMAP ID name or HTTP User-Agent, for display only
	// Admitted, when set, is called once the attempt has passed the rate
	// limiter (a right app password passes it at once), before an account
	// password is verified. The proxy starts dialing the
	// upstream there, so the dial overlaps the check but a throttled
	// attempt never costs the upstream a connection.
	Admitted func()
	// Renewal says the front-end accepted this very credential on this
	// connection before: DAV clients send Basic with every request, and a
	// keep-alive connection is one sign-in, so its repeats are decided in
	// full but not audited again (W5). Failures always are.
	Renewal bool
	// Upstream says the front-end logs in to an upstream server after a
	// grant. A granted attempt's audit event then waits for Grant.Settle,
	// so that it records what the client was finally answered: a right
	// password in front of an upstream that is down is no sign-in.
	Upstream bool
}

// Grant is what a successful Authenticate hands to the proxy.
type Grant struct {
	UserID    string
	Username  string // canonical
	AppPassID string // empty when the account password was used
	// AppPassName is the app password's name, for session listings.
	AppPassName string
	// Expires is when the app password stops working; zero: never. A live
	// session ends then too.
	Expires time.Time
	Scopes  []Protocol
	// GraceUntil is set when an account password was accepted only because
	// the organisation's two-step grace period has not ended yet.
	GraceUntil time.Time

	// pending is the audit event of an attempt with Upstream set, until
	// Settle records it.
	pending *pendingLogin
}

// pendingLogin is a granted sign-in whose outcome the front-end has yet to
// report.
type pendingLogin struct {
	once  sync.Once
	audit *auditWriter
	ev    Event
}

// Settle records the outcome of a login granted with Attempt.Upstream set:
// nil when the client is logged in, otherwise the error the client was
// answered with (ErrUnauthorized: refused after all, for example by a kick
// during the login; anything else: unavailable) and a short reason for the
// audit log ("upstream_error"). Only the first call records anything, and
// on any other grant Settle does nothing, so a front-end may settle early
// on one path and once more, by default, on its way out.
func (g Grant) Settle(err error, reason string) {
	p := g.pending
	if p == nil {
		return
	}
	p.once.Do(func() {
		ev := p.ev
		switch {
		case err == nil:
		case errors.Is(err, ErrUnauthorized):
			ev.Result, ev.Reason = "denied", reason
		default:
			ev.Result, ev.Reason = "unavailable", reason
		}
		p.audit.enqueue(ev)
	})
}

// PasswordCredential is the CredentialID of the account password: live
// sessions, kicks and listings name a credential by it or by an app
// password's id.
const PasswordCredential = "password"

// CredentialID names the credential of a grant for kicks and logs.
func (g Grant) CredentialID() string {
	if g.AppPassID == "" {
		return PasswordCredential
	}
	return g.AppPassID
}

// Revocation describes which live sessions must end after a change to
// credentials (app password revoked, password changed, user disabled or
// deleted, two-step reset, organisation enforcement turned on). The store
// reports it through Options.OnRevoke; the proxy's registry acts on it.
type Revocation struct {
	Username     string // canonical; empty means every user
	AppPassID    string // empty means every credential of the matching users
	PasswordOnly bool   // only sessions that logged in with the account password
	// Cause is the change, so that a client can be told why its session
	// ended; empty when none applies.
	Cause Cause
}

// Cause names the change behind a Revocation.
type Cause string

const (
	CauseAppPasswordRevoked  Cause = "app_password_revoked"
	CausePasswordChanged     Cause = "password_changed"         // account-password sessions end
	CauseAppPasswordsRevoked Cause = "password_changed_revoked" // and every app password with it
	CauseDisabled            Cause = "disabled"                 // the account
	CauseDeleted             Cause = "deleted"                  // the account
	CauseMFAReset            Cause = "mfa_reset"                // every device logs in again
	CauseMFAEnabled          Cause = "mfa_enabled"              // mail apps now need app passwords
	CauseMFARequired         Cause = "mfa_required"             // by the organisation, grace over
)
