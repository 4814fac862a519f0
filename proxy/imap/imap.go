// Package imap is postern's IMAP front-end: a small pre-auth state machine
// of its own (greeting, CAPABILITY, ID, STARTTLS, LOGIN, AUTHENTICATE) and
// the login to the upstream server on the user's behalf. It decides nothing
// about credentials and never reads post-login traffic: the proxy package
// runs the session and relays bytes once a login has been answered.
package imap

import (
	"log/slog"
	"sync/atomic"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// Config configures the IMAP front-end and its upstream login.
type Config struct {
	proxy.Adapter
	proxy.UpstreamCredential
	// SendID sends ID with x-originating-ip, x-originating-port and
	// x-session-id before the upstream login.
	SendID bool
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
	cfg.Adapter = cfg.Adapter.WithDefaults()
	// The URL goes verbatim into a response line; a control character in
	// it would end the line early.
	cfg.AccountURL = safetext.OneLine(cfg.AccountURL, "")
	return &Protocol{cfg: cfg, log: cfg.Logger, failure: failureAnswer(cfg.AccountURL)}
}

// Name reports the protocol's scope name.
func (p *Protocol) Name() authstore.Protocol { return authstore.IMAP }
