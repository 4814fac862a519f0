package bench

import (
	"bytes"
	"crypto/rand"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/internal/testpeer"
)

// The SMTP benchmark's targets, all in front of one private Postfix whose
// SASL is a private Dovecot: Postfix itself over implicit TLS, postern
// (XCLIENT), nginx's mail proxy (XCLIENT, with the auth_http responder the
// IMAP figures use) and the bare relay (the client's AUTH reaches Postfix).

// smtpPostfixConfig lets Postfix take the benchmark's load and keep
// nothing: messages are discarded once queued (the queue file is still
// written and synced, as for a real delivery), the size limit fits the
// 20 MB message, and no per-client rate limit applies.
const smtpPostfixConfig = `
message_size_limit = 52428800
transport_maps = static:discard:benchmark
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtpd_client_message_rate_limit = 0
smtpd_client_recipient_rate_limit = 0
smtpd_client_new_tls_session_rate_limit = 0
smtpd_client_auth_rate_limit = 0
`

// smtpPosternConfig is postern's submission listener in front of Postfix
// on the same host: XCLIENT over loopback without TLS, the default log
// level; every other listener off.
var smtpPosternConfig = template.Must(template.New("postern.toml").Parse(`
data_dir = "{{.Dir}}/data"
key_file = "{{.Dir}}/postern.key"

[tls]
certificates = [{ cert_file = "{{.Cert}}", key_file = "{{.Key}}" }]

[imap]
listen_tls = ""
listen_starttls = ""

[pop3]
listen_tls = ""
listen_stls = ""

[smtp]
listen_tls = "{{.Addr}}"
hostname = "postern.bench"

[admin]
listen = ""

[upstream.smtp]
address = "{{.Upstream}}"
security = "none"
login = "xclient"

[limits]
max_connections = 100000
max_connections_per_ip = 100000
`))

// smtpNginxConfig is nginx's mail proxy for SMTP: AUTH PLAIN and LOGIN
// checked by auth_http, then XCLIENT to Postfix, TLS at the listener.
var smtpNginxConfig = template.Must(template.New("nginx.conf").Parse(`
load_module {{.Module}};
daemon off;
worker_processes auto;
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log error;

events {
  worker_connections 4096;
}

mail {
  server_name localhost;
  auth_http {{.Auth}}/auth;
  smtp_auth plain login;
  smtp_capabilities "SIZE 52428800" PIPELINING 8BITMIME ENHANCEDSTATUSCODES;
  xclient on;
  ssl_certificate {{.Cert}};
  ssl_certificate_key {{.Key}};
  ssl_protocols TLSv1.2 TLSv1.3;

  server {
    listen {{.Addr}} ssl;
    protocol smtp;
  }
}
`))

// smtpTarget is one column: where clients connect, with which accounts,
// and the proxy process whose processor time is counted (0 for direct).
type smtpTarget struct {
	name     string
	target   load.Target
	accounts []load.Account
	pid      int
}

// smtpPeers are the mail servers behind every target.
type smtpPeers struct {
	dovecot    *testpeer.DovecotPeer
	postfix    *testpeer.PostfixPeer
	dovecotPID int
	postfixPID int
}

func startSMTPPeers(t *testing.T) smtpPeers {
	t.Helper()
	users := map[string]string{}
	for i := range mailUsers {
		users[userName(i)] = rand.Text()
	}
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{Users: users})
	pf := testpeer.Postfix(t, testpeer.PostfixOptions{Dovecot: d, ExtraConfig: smtpPostfixConfig})
	return smtpPeers{dovecot: d, postfix: pf, dovecotPID: dovecotPID(t, d),
		postfixPID: postfixPID(t, pf)}
}

// dovecotAccounts are the users with their Dovecot passwords, which
// Postfix's SASL checks for direct and relayed clients.
func (p smtpPeers) dovecotAccounts() []load.Account {
	var out []load.Account
	for i := range mailUsers {
		out = append(out, load.Account{User: userName(i), Password: p.dovecot.Users[userName(i)]})
	}
	return out
}

// startSMTPPostern runs postern serve with one SMTP app password per user,
// made with the command line.
func startSMTPPostern(t *testing.T, bin string, cert certFiles, upstream string) smtpTarget {
	t.Helper()
	dir := t.TempDir()
	p := &posternSetup{bin: bin, dir: dir, conf: filepath.Join(dir, "postern.toml")}
	addr := freeAddr(t)
	writeTemplate(t, p.conf, smtpPosternConfig, map[string]string{"Dir": dir, "Cert": cert.cert, "Key": cert.key,
		"Addr": addr, "Upstream": upstream})
	p.cli(t, "check-config")
	p.cli(t, "init")
	tg := smtpTarget{name: Postern}
	for i := range mailUsers {
		name := userName(i)
		p.cli(t, "user", "add", name, "--no-password")
		secret := p.cli(t, "app-password", "create", name, "--name", "bench", "--scope", "smtp")
		tg.accounts = append(tg.accounts, load.Account{User: name, Password: strings.TrimSpace(secret)})
	}
	proc := startProcess(t, dir, "postern-smtp", bin, "serve", "-c", p.conf)
	waitHTTPS(t, addr, proc.exited)
	tg.target, tg.pid = load.Target{Addr: addr}, proc.pid()
	return tg
}

// startSMTPNginx runs nginx's mail proxy with an auth_http responder that
// checks each user's secret and sends nginx on to Postfix.
func startSMTPNginx(t *testing.T, cert certFiles, p smtpPeers) smtpTarget {
	t.Helper()
	bin := testpeer.RequirePeer(t, "nginx")
	if _, err := os.Stat(nginxModule); err != nil {
		t.Fatalf("nginx mail module: %v (install libnginx-mod-mail)", err)
	}
	_, port, err := net.SplitHostPort(p.postfix.Addr)
	if err != nil {
		t.Fatal(err)
	}
	tg := smtpTarget{name: Nginx}
	secrets := map[string]string{}
	for i := range mailUsers {
		a := load.Account{User: userName(i), Password: appPasswordLike()}
		tg.accounts = append(tg.accounts, a)
		secrets[a.User] = a.Password
	}
	auth := startAuthHTTP(t, authResponder{secrets: secrets, dovecot: p.dovecot.Users, port: port})
	dir := t.TempDir()
	addr := freeAddr(t)
	conf := filepath.Join(dir, "nginx.conf")
	writeTemplate(t, conf, smtpNginxConfig, map[string]any{"Module": nginxModule, "Dir": dir, "Auth": auth,
		"Cert": cert.cert, "Key": cert.key, "Addr": addr})
	proc := startProcess(t, dir, "nginx-smtp", bin, "-p", dir, "-c", conf, "-e", filepath.Join(dir, "error.log"))
	waitHTTPS(t, addr, proc.exited)
	tg.target, tg.pid = load.Target{Addr: addr}, proc.pid()
	return tg
}

func writeTemplate(t *testing.T, path string, tmpl *template.Template, data any) {
	t.Helper()
	var b bytes.Buffer
	if err := tmpl.Execute(&b, data); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
}

// postfixPID finds the master process of the Postfix whose configuration
// directory holds its log ("master -c DIR -d").
func postfixPID(t *testing.T, pf *testpeer.PostfixPeer) int {
	t.Helper()
	dir := filepath.Dir(pf.LogFile)
	return processByArgs(t, "postfix master for "+dir, func(args []string) bool {
		return filepath.Base(args[0]) == "master" && slices.Contains(args, dir)
	})
}
