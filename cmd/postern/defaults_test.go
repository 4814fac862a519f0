package main

import (
	"testing"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
)

// TestProxyFallbacksMatchConfig keeps the proxy's fallbacks for zero
// values (used only by tests and embedders) equal to config's defaults,
// which are the ones the gateway passes.
func TestProxyFallbacksMatchConfig(t *testing.T) {
	d := config.Default()
	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"limits.max_line_bytes", proxy.DefaultMaxLine, d.Limits.MaxLineBytes},
		{"limits.max_bad_commands", proxy.DefaultMaxBadCommands, d.Limits.MaxBadCommands},
		{"upstream.imap.login_timeout", proxy.DefaultLoginTimeout, d.Upstream.IMAP.LoginTimeout.Duration},
		{"upstream.pop3.login_timeout", proxy.DefaultLoginTimeout, d.Upstream.POP3.LoginTimeout.Duration},
		{"upstream.imap.dial_timeout", proxy.DefaultDialTimeout, d.Upstream.IMAP.DialTimeout.Duration},
		{"upstream.pop3.dial_timeout", proxy.DefaultDialTimeout, d.Upstream.POP3.DialTimeout.Duration},
	} {
		if c.got != c.want {
			t.Errorf("%s: proxy falls back to %v, config defaults to %v", c.name, c.got, c.want)
		}
	}
}
