package main

import (
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/memimap"
	"github.com/postern-dev/postern/internal/memsmtp"
)

// demoMasterUser is the name postern logs in to the demo's submission
// server with, on each user's behalf.
const demoMasterUser = "postern"

// demoSMTP is the demo's embedded submission server: it delivers into the
// demo's own IMAP mailboxes, so a message sent through postern shows up
// there.
type demoSMTP struct {
	srv      *memsmtp.Server
	password string // the master user's
}

func startDemoSMTP(mail *memimap.Server, users map[string]string) (*demoSMTP, error) {
	names := make([]string, 0, len(users))
	for u := range users {
		names = append(names, u)
	}
	slices.Sort(names)
	d := &demoSMTP{password: rand.Text()}
	var err error
	d.srv, err = memsmtp.Start("127.0.0.1:0", memsmtp.Options{Hostname: "localhost", Users: names,
		MasterUser: demoMasterUser, MasterPassword: d.password,
		Deliver: func(user string, msg []byte) error { return mail.Append(user, "INBOX", msg) }})
	return d, err
}

func (d *demoSMTP) close() { d.srv.Close() }

// configure points postern's SMTP upstream at the embedded server, logging
// in as its master user (go-smtp has no XCLIENT), whose password goes into
// a file in dir as the configuration wants it.
func (d *demoSMTP) configure(cfg *config.Config, dir string) error {
	pwFile := filepath.Join(dir, "smtp-master-password")
	if err := os.WriteFile(pwFile, []byte(d.password+"\n"), 0o600); err != nil {
		return err
	}
	cfg.SMTP.Hostname = "localhost"
	up := &cfg.Upstream.SMTP
	up.Address, up.Security, up.Login = d.srv.Addr(), config.SecurityNone, config.LoginMaster
	up.MasterUser, up.MasterPasswordFile = demoMasterUser, pwFile
	return nil
}

// demoMessage is the message the printed send command uploads.
const demoMessage = "From: Demo User <demo@localhost>\r\nTo: Demo User <demo@localhost>\r\n" +
	"Subject: Sent through postern\r\n\r\nThis message went out through postern's SMTP listener with an app password.\r\n"

// printDemoSMTP prints a ready-to-paste send of a message to the demo
// user, which then shows in the mailbox listed above.
func (c *cli) printDemoSMTP(dir string, addrs map[string]string, s demoSetup) {
	msg := filepath.Join(dir, "hello.eml")
	if err := os.WriteFile(msg, []byte(demoMessage), 0o644); err != nil {
		fmt.Fprintf(c.stderr, "postern demo: cannot write the sample message: %v\n", err)
		return
	}
	cert := filepath.Join(dir, "data", "tls", "cert.pem")
	w := c.stdout
	fmt.Fprintln(w, "Send a message through postern (SMTP); it arrives in the mailbox listed above:")
	fmt.Fprintf(w, "  curl --cacert %s --url 'smtps://%s' --user '%s:%s' --mail-from %s@localhost --mail-rcpt %s@localhost --upload-file %s\n",
		cert, addrs["smtps"], demoUser, strings.ReplaceAll(s.appPassword, " ", ""), demoUser, demoUser, msg)
}
