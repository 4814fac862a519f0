package main

import (
	"context"
	"crypto/rand"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/memimap"
)

const demoUser = "demo"

// demoActor is who the audit log says set the demo's accounts up; the
// account page reads it as "during set-up".
var demoActor = authstore.Actor{Name: "setup:demo"}

// demo runs postern in front of embedded IMAP, POP3, submission and
// CalDAV/CardDAV servers, with a demo user
// whose two-step verification is on and who has one app password.
func (c *cli) demo(ctx context.Context, _ *cli, args []string) error {
	fs := newFlags("demo")
	listen := fs.String("listen", "127.0.0.1", "address to listen on")
	keep := fs.Bool("keep", false, "keep the temporary data directory")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "postern-demo-")
	if err != nil {
		return err
	}
	if !*keep {
		defer os.RemoveAll(dir)
	}
	upstreamPw := rand.Text()
	newcomerPw := rand.Text()
	users := map[string]string{demoUser: upstreamPw, demoNewcomer: newcomerPw}
	mem, err := memimap.Start("127.0.0.1:0", users)
	if err != nil {
		return err
	}
	defer mem.Close()
	ups, err := startDemoUpstreams(mem, users)
	if err != nil {
		return err
	}
	defer ups.close()

	cfg := demoConfig(dir, *listen, mem.Addr())
	if err := ups.configure(cfg, *listen, dir); err != nil {
		return err
	}
	if err := demoSignIn(cfg); err != nil {
		return err
	}
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("demo configuration: %w", err)
	}
	log := newLogger(c.stderr, config.Log{Level: "warn"})
	g, err := startGateway(cfg, log)
	if err != nil {
		return err
	}
	setup, err := demoAccount(ctx, g.store, upstreamPw)
	var web demoWeb
	if err == nil {
		web, err = demoWebUsers(ctx, g.store, newcomerPw)
	}
	if err != nil {
		g.shutdown(context.Background())
		return err
	}
	shown := shownAddrs(g.addrs)
	c.printDemo(dir, shown, setup)
	c.printDemoWeb(cfg.Admin.PublicURL, shown, setup, web)
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return g.shutdown(sctx)
}

// demoSignIn chooses the admin listener's port before the gateway starts,
// so that admin.public_url, which login-failure hints and kicks quote, can
// name the demo's sign-in page. Should another program take the port in
// the moment between, the gateway fails to start and says so.
func demoSignIn(cfg *config.Config) error {
	ln, err := net.Listen("tcp", cfg.Admin.Listen)
	if err != nil {
		return fmt.Errorf("admin listener: %w", err)
	}
	cfg.Admin.Listen = ln.Addr().String()
	ln.Close()
	cfg.Admin.PublicURL = "https://" + shownAddr(cfg.Admin.Listen) + "/login"
	return nil
}

// shownAddr is addr as the demo prints it: "localhost" for a loopback or
// unspecified address. The self-signed certificate covers localhost, and
// clients that check only DNS names (fetchmail) refuse an IP address.
func shownAddr(addr string) string {
	host, port, err := net.SplitHostPort(addr)
	if ip := net.ParseIP(host); err == nil && ip != nil && (ip.IsLoopback() || ip.IsUnspecified()) {
		return net.JoinHostPort("localhost", port)
	}
	return addr
}

// shownAddrs maps every listener's address through shownAddr.
func shownAddrs(addrs map[string]string) map[string]string {
	out := make(map[string]string, len(addrs))
	for k, v := range addrs {
		out[k] = shownAddr(v)
	}
	return out
}

func demoConfig(dir, host, upstreamAddr string) *config.Config {
	cfg := config.Default()
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.KeyFile = filepath.Join(dir, "keys", "postern.key")
	cfg.TLS.SelfSigned = true
	at := func(port string) string { return net.JoinHostPort(host, port) }
	cfg.IMAP.ListenTLS, cfg.IMAP.ListenSTARTTLS = at("0"), at("0")
	cfg.Admin.Listen = at("0")
	up := &cfg.Upstream.IMAP
	up.Address, up.Security, up.Login = upstreamAddr, config.SecurityNone, config.LoginStored
	return cfg
}

type demoSetup struct {
	password, appPassword, totpSecret, totpURI string
	backupCodes                                []string
	adminToken                                 string
}

// demoAccount creates the demo user with an account password, two-step
// verification confirmed with a first code, and an app password for mail.
func demoAccount(ctx context.Context, st *authstore.Store, upstreamPw string) (demoSetup, error) {
	ctx = authstore.WithActor(ctx, demoActor)
	s := demoSetup{password: rand.Text()[:16]}
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: demoUser, Display: "Demo User", Password: s.password}); err != nil {
		return s, err
	}
	if err := st.SetUpstreamPassword(ctx, demoUser, upstreamPw); err != nil {
		return s, err
	}
	enr, err := st.BeginTOTP(ctx, demoUser)
	if err != nil {
		return s, err
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		return s, err
	}
	if s.backupCodes, err = st.ConfirmTOTP(ctx, demoUser, code); err != nil {
		return s, err
	}
	s.totpSecret, s.totpURI = enr.Secret, enr.URI
	if _, s.appPassword, err = st.CreateAppPassword(ctx, demoUser, authstore.NewAppPassword{Name: "Demo mail app"}); err != nil {
		return s, err
	}
	_, s.adminToken, err = st.CreateToken(ctx, authstore.NewToken{Name: "demo", Role: authstore.RoleAdmin})
	return s, err
}

func (c *cli) printDemo(dir string, addrs map[string]string, s demoSetup) {
	cert := filepath.Join(dir, "data", "tls", "cert.pem")
	w := c.stdout
	fmt.Fprintln(w, "postern demo is running (Ctrl-C to stop)")
	fmt.Fprintln(w)
	c.printDemoEndpoints(addrs)
	fmt.Fprintf(w, "  admin API (HTTPS)    https://%s/api/v1/  (document: /api/v1/openapi.json)\n", addrs["admin"])
	fmt.Fprintf(w, "  metrics, health      https://%s/metrics  https://%s/healthz\n", addrs["admin"], addrs["admin"])
	fmt.Fprintf(w, "  certificate          %s (self-signed)\n", cert)
	fmt.Fprintln(w)
	fmt.Fprintf(w, "  user                 %s\n", demoUser)
	fmt.Fprintf(w, "  account password     %s (refused by mail apps: two-step verification is on)\n", s.password)
	fmt.Fprintf(w, "  authenticator        %s\n", s.totpURI)
	fmt.Fprintf(w, "  backup codes         %s (each signs in once instead of a code)\n", strings.Join(s.backupCodes, ", "))
	fmt.Fprintf(w, "  app password         %s\n", s.appPassword)
	fmt.Fprintf(w, "  admin API token      %s\n", s.adminToken)
	fmt.Fprintln(w)
	curl := fmt.Sprintf("curl --cacert %s 'imaps://%s/INBOX", cert, addrs["imaps"])
	user := fmt.Sprintf("--user '%s:%s'", demoUser, strings.ReplaceAll(s.appPassword, " ", ""))
	fmt.Fprintln(w, "List the mailbox through postern:")
	fmt.Fprintf(w, "  %s' %s -X 'FETCH 1:* (FLAGS ENVELOPE)'\n", curl, user)
	fmt.Fprintln(w, "Read the first message:")
	fmt.Fprintf(w, "  %s;UID=1' %s\n", curl, user)
	fmt.Fprintln(w, "List the live mail sessions through the admin API:")
	fmt.Fprintf(w, "  curl --cacert %s -H 'Authorization: Bearer %s' https://%s/api/v1/sessions\n", cert, s.adminToken, addrs["admin"])
	c.printDemoDAV(dir, addrs, s)
	c.printDemoSMTP(dir, addrs, s)
}
