// Package imap is postern's IMAP front-end: a small pre-auth state machine
// of its own (greeting, CAPABILITY, ID, STARTTLS, LOGIN, AUTHENTICATE) and
// the login to the upstream server on the user's behalf. It decides nothing
// about credentials and never reads post-login traffic: the proxy package
// runs the session and relays bytes once a login has been answered.
package imap

import (
	"context"
	"crypto/tls"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// Config configures the IMAP front-end and its upstream login.
type Config struct {
	// AccountURL is where users create app passwords; it is shown in the
	// answer to a failed login. Empty leaves the hint out.
	AccountURL string
	// UpstreamStartTLS, when non-nil, upgrades the upstream connection with
	// STARTTLS using this config, built by proxy.Upstream.ClientTLS like
	// the implicit-TLS one. An upstream that does not offer STARTTLS is
	// refused; there is no plaintext fallback.
	UpstreamStartTLS *tls.Config
	// MasterUser and MasterPassword log in upstream with SASL PLAIN,
	// authzid = user and authcid = MasterUser (a Dovecot master user).
	MasterUser, MasterPassword string
	// UpstreamPassword returns the user's stored upstream password for
	// LOGIN; it is used when MasterUser is empty.
	UpstreamPassword func(ctx context.Context, user string) (string, error)
	// SendID sends ID with x-originating-ip, x-originating-port and
	// x-session-id before the upstream login.
	SendID bool
	// MaxLine bounds a pre-auth line and a pre-auth literal in bytes
	// (default 8192).
	MaxLine int
	// MaxBadCommands is how many invalid commands a client may send before
	// the connection is closed (default 5).
	MaxBadCommands int
	// Logger receives debug records; nil discards them.
	Logger *slog.Logger
}

// Protocol is the IMAP implementation of proxy.Protocol. It is safe for
// concurrent use by many sessions.
type Protocol struct {
	cfg     Config
	log     *slog.Logger
	failure status
	// upstreamCaps holds the pre-login capabilities of the last upstream
	// login, so clients are offered IMAP4rev2 only when the upstream has it.
	upstreamCaps atomic.Pointer[[]string]
}

var _ proxy.Protocol = (*Protocol)(nil)

// New returns the IMAP protocol with cfg's zero fields set to defaults.
func New(cfg Config) *Protocol {
	if cfg.MaxLine <= 0 {
		cfg.MaxLine = 8192
	}
	if cfg.MaxBadCommands <= 0 {
		cfg.MaxBadCommands = 5
	}
	// The URL goes verbatim into a response line; a control character in
	// it would end the line early.
	cfg.AccountURL = stripControls(cfg.AccountURL)
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Protocol{cfg: cfg, log: log, failure: failureAnswer(cfg.AccountURL)}
}

// Name reports the protocol's scope name.
func (p *Protocol) Name() authstore.Protocol { return authstore.IMAP }

// watchContext applies ctx to blocking I/O through set, a connection's
// SetDeadline or SetReadDeadline: ctx's deadline becomes the connection's,
// and cancellation wakes a call in progress. set must belong to the
// connection as dialed or accepted, which stays valid across a TLS upgrade.
// stop ends the watch and reports whether ctx was still live.
func watchContext(ctx context.Context, set func(time.Time) error) (stop func() bool) {
	if d, ok := ctx.Deadline(); ok {
		_ = set(d)
	}
	return context.AfterFunc(ctx, func() {
		_ = set(time.Unix(1, 0))
	})
}
