package main

import (
	"net"
	"net/url"

	"github.com/postern-dev/postern/admin"
	"github.com/postern-dev/postern/config"
)

// mailSettings are the client settings the web pages show beside a new app
// password: one row per mail listener (and the CalDAV/CardDAV address when
// DAV is served, and the ActiveSync server when it is), named by
// admin.public_url's host when it is set.
func (g *gateway) mailSettings(cfg *config.Config) []admin.MailSetting {
	host := ""
	if u, err := url.Parse(cfg.Admin.PublicURL); err == nil && cfg.Admin.PublicURL != "" {
		host = u.Hostname()
	}
	var out []admin.MailSetting
	for _, l := range []struct{ service, listener, security string }{
		{"IMAP", "imaps", "SSL/TLS"}, {"IMAP", "imap", "STARTTLS"},
		{"POP3", "pop3s", "SSL/TLS"}, {"POP3", "pop3", "STARTTLS"},
		{"SMTP (sending)", "smtps", "SSL/TLS"}, {"SMTP (sending)", "smtp", "STARTTLS"},
	} {
		h, port, err := net.SplitHostPort(g.addrs[l.listener])
		if err != nil {
			continue
		}
		if host != "" {
			h = host
		}
		out = append(out, admin.MailSetting{Service: l.service, Server: h, Port: port, Security: l.security})
	}
	// The bound address, as for the mail listeners: dav.listen may ask for
	// port 0, and a client needs the port the listener got.
	if h, port, err := net.SplitHostPort(g.addrs["dav"]); err == nil {
		if host != "" {
			h = host
		}
		base := "https://" + net.JoinHostPort(h, port)
		out = append(out, admin.MailSetting{Service: "CalDAV", Server: base + cfg.DAV.CalDAVPath},
			admin.MailSetting{Service: "CardDAV", Server: base + cfg.DAV.CardDAVPath})
		if cfg.ActiveSyncEnabled() {
			// Phones ask for the server's name and find the path
			// themselves.
			out = append(out, admin.MailSetting{Service: "Exchange ActiveSync", Server: h, Port: port, Security: "SSL/TLS"})
		}
	}
	return out
}
