package main

import (
	"fmt"
	"net"
	"path/filepath"
	"strings"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/memdav"
	"github.com/postern-dev/postern/internal/memimap"
	"github.com/postern-dev/postern/internal/mempop3"
)

// demoUpstreams are the embedded POP3, submission and CalDAV/CardDAV
// servers the demo runs behind postern, beside the IMAP one.
type demoUpstreams struct {
	pop3 *mempop3.Server
	smtp *demoSMTP
	dav  *memdav.Server
}

// startDemoUpstreams starts them for the users (name → upstream password)
// of mail, whose INBOX the POP3 server serves: one mailbox either way.
func startDemoUpstreams(mail *memimap.Server, users map[string]string) (*demoUpstreams, error) {
	inbox := func(user string) ([][]byte, error) { return mail.Messages(user, "INBOX") }
	pop3, err := mempop3.Start("127.0.0.1:0", users, inbox)
	if err != nil {
		return nil, err
	}
	smtp, err := startDemoSMTP(mail, users)
	if err != nil {
		pop3.Close()
		return nil, err
	}
	dav, err := memdav.Start("127.0.0.1:0", []string{demoUser})
	if err != nil {
		pop3.Close()
		smtp.close()
		return nil, err
	}
	return &demoUpstreams{pop3: pop3, smtp: smtp, dav: dav}, nil
}

func (d *demoUpstreams) close() {
	d.pop3.Close()
	d.smtp.close()
	d.dav.Close()
}

// configure opens the POP3, SMTP and DAV listeners on host in front of
// them; dir holds what the configuration needs in files.
func (d *demoUpstreams) configure(cfg *config.Config, host, dir string) error {
	at := func(port string) string { return net.JoinHostPort(host, port) }
	cfg.SMTP.ListenTLS, cfg.SMTP.ListenSTARTTLS = at("0"), at("0")
	if err := d.smtp.configure(cfg, dir); err != nil {
		return err
	}
	cfg.POP3.ListenTLS, cfg.POP3.ListenSTLS = at("0"), at("0")
	up := &cfg.Upstream.POP3
	up.Address, up.Security, up.Login = d.pop3.Addr(), config.SecurityNone, config.LoginStored
	cfg.DAV.Listen = at("0")
	cfg.DAV.CalDAVPath, cfg.DAV.CardDAVPath = memdav.CalDAVPrefix, memdav.CardDAVPrefix
	cfg.DAV.CalDAVPrefixes, cfg.DAV.CardDAVPrefixes = []string{memdav.CalDAVPrefix}, []string{memdav.CardDAVPrefix}
	cfg.Upstream.DAV.URL = d.dav.URL()
	return nil
}

// printDemoEndpoints lists every endpoint as a URL a client accepts.
func (c *cli) printDemoEndpoints(addrs map[string]string) {
	w := c.stdout
	fmt.Fprintf(w, "  IMAP, implicit TLS   imaps://%s\n", addrs["imaps"])
	fmt.Fprintf(w, "  IMAP, STARTTLS       imap://%s\n", addrs["imap"])
	fmt.Fprintf(w, "  POP3, implicit TLS   pop3s://%s\n", addrs["pop3s"])
	fmt.Fprintf(w, "  POP3, STLS           pop3://%s\n", addrs["pop3"])
	fmt.Fprintf(w, "  SMTP, implicit TLS   smtps://%s\n", addrs["smtps"])
	fmt.Fprintf(w, "  SMTP, STARTTLS       smtp://%s\n", addrs["smtp"])
	fmt.Fprintf(w, "  CalDAV               https://%s%s\n", addrs["dav"], memdav.CalDAVPrefix)
	fmt.Fprintf(w, "  CardDAV              https://%s%s\n", addrs["dav"], memdav.CardDAVPrefix)
}

// printDemoDAV prints a ready-to-paste PROPFIND of the demo calendar.
func (c *cli) printDemoDAV(dir string, addrs map[string]string, s demoSetup) {
	cert := filepath.Join(dir, "data", "tls", "cert.pem")
	w := c.stdout
	fmt.Fprintln(w, "List the calendar through postern (CalDAV):")
	fmt.Fprintf(w, "  curl --cacert %s --user '%s:%s' -X PROPFIND -H 'Depth: 1' 'https://%s%s%s/calendars/default/'\n",
		cert, demoUser, strings.ReplaceAll(s.appPassword, " ", ""), addrs["dav"], memdav.CalDAVPrefix, demoUser)
}
