package proxy

import (
	"context"
	"crypto/tls"
	"log/slog"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
)

// Fallbacks for an adapter or server built with zero values (tests,
// embedders). The gateway always passes config's values, and
// cmd/postern's tests check that these equal config.Default's.
const (
	DefaultMaxLine        = 8192
	DefaultMaxBadCommands = 5
	DefaultLoginTimeout   = 15 * time.Second
	DefaultDialTimeout    = 5 * time.Second
)

// Adapter is what every front-end adapter (imap, pop3, dav) takes from the
// configuration for its client side.
type Adapter struct {
	// AccountURL is where users create app passwords; the answer to a
	// failed login names it (FailureHint). Empty leaves the address out of
	// the hint, not the hint.
	AccountURL string
	// MaxLine bounds a pre-auth line (and an IMAP literal) in bytes,
	// terminator included (default DefaultMaxLine). RFC 2449 allows 255
	// octets for a POP3 command, but SASL responses need more.
	MaxLine int
	// MaxBadCommands is how many invalid commands a client may send before
	// the connection is closed (default DefaultMaxBadCommands).
	MaxBadCommands int
	// Logger receives the adapter's records; nil discards them.
	Logger *slog.Logger
}

// WithDefaults returns a with its zero fields set.
func (a Adapter) WithDefaults() Adapter {
	if a.MaxLine <= 0 {
		a.MaxLine = DefaultMaxLine
	}
	if a.MaxBadCommands <= 0 {
		a.MaxBadCommands = DefaultMaxBadCommands
	}
	if a.Logger == nil {
		a.Logger = slog.New(slog.DiscardHandler)
	}
	return a
}

// FailureHint is the text of every front-end's answer to a failed login,
// for the apps that use it ("Mail apps"): the same bytes whatever failed
// (A9), a hint at app passwords with or without an account
// page, and the page's address when there is one, stripped of what could
// end, split or reorder an answer.
func FailureHint(apps, accountURL string) string {
	return "Authentication failed. " + AppPasswordHint(apps, accountURL)
}

// AppPasswordHint tells the people behind a failed login what to do: use
// an app password, made on the account page when there is one.
func AppPasswordHint(apps, accountURL string) string {
	text := apps + " need an app password"
	url := safetext.OneLine(accountURL, "")
	if url == "" {
		return text + "."
	}
	return text + ": " + url
}

// UpstreamCredential is how an adapter reaches the upstream and logs in
// to it as the user.
type UpstreamCredential struct {
	// UpstreamTLS verifies the upstream, built by Upstream.ClientTLS. For
	// IMAP and POP3, when non-nil, it upgrades the upstream connection with
	// STARTTLS or STLS, and an upstream that does not offer the upgrade is
	// refused: there is no plaintext fallback. For DAV it verifies an https
	// upstream.
	UpstreamTLS *tls.Config
	// MasterUser and MasterPassword log in with SASL PLAIN, authzid = user
	// and authcid = MasterUser (a Dovecot master user); IMAP and POP3 only.
	MasterUser, MasterPassword string
	// UpstreamPassword returns the user's stored upstream password; it is
	// used when MasterUser is empty (and by DAV's stored auth).
	UpstreamPassword func(ctx context.Context, user string) (string, error)
}

// ValidCredential reports whether s may be handed on as a user name or a
// secret: non-empty and without CR, LF or NUL.
func ValidCredential(s string) bool {
	return s != "" && !safetext.BreaksCommand(s)
}

// BindDeadline makes blocking I/O follow ctx through set, a connection's
// SetDeadline or SetReadDeadline: ctx's deadline becomes the connection's,
// and ctx's end moves it into the past, waking a call in progress. set must
// belong to the connection as dialed or accepted, which stays valid across
// a TLS upgrade. The returned release stops the watch and reports whether
// ctx was still live; if the wake-up already started, release waits for it,
// so no deadline moves after release returns (a late one would cut a relay
// the caller started). Deadlines are left as they are: the caller owns them
// afterwards.
func BindDeadline(ctx context.Context, set func(time.Time) error) (release func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = set(d)
	}
	fired := make(chan struct{})
	stop := context.AfterFunc(ctx, func() {
		defer close(fired)
		_ = set(time.Unix(1, 0))
	})
	return func() bool {
		if stop() {
			return true
		}
		<-fired
		return false
	}
}
