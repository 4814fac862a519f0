package bench

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"text/template"

	"github.com/postern-dev/postern/bench/load"
	"github.com/postern-dev/postern/internal/testpeer"
)

// nginxModule is where Debian's libnginx-mod-mail puts the mail module.
const nginxModule = "/usr/lib/nginx/modules/ngx_mail_module.so"

// nginxConfig runs nginx's mail proxy in the foreground with everything in
// its own directory. Workers and descriptor limits are set for the idle
// sessions; the rest is nginx's defaults.
var nginxConfig = template.Must(template.New("nginx.conf").Parse(`
load_module {{.Module}};
daemon off;
worker_processes auto;
worker_rlimit_nofile {{.NoFile}};
pid {{.Dir}}/nginx.pid;
error_log {{.Dir}}/error.log error;

events {
  worker_connections {{.NoFile}};
}

mail {
  server_name localhost;
  auth_http {{.Auth}}/auth;
  imap_capabilities IMAP4rev1 LITERAL+ SASL-IR ID IDLE;
  imap_auth login plain;
  ssl_certificate {{.Cert}};
  ssl_certificate_key {{.Key}};
  ssl_protocols TLSv1.2 TLSv1.3;

  server {
    listen {{.PlainAddr}};
    protocol imap;
  }
  server {
    listen {{.TLSAddr}} ssl;
    protocol imap;
  }
}
`))

// nginxSetup is nginx's configuration and the accounts its auth_http
// responder accepts.
type nginxSetup struct {
	bin, dir, conf     string
	tlsAddr, plainAddr string
	accounts           []load.Account
}

// setupNginx writes the configuration and starts the auth_http responder,
// which checks each user's secret (as long as an app password, compared in
// constant time) and sends nginx on to Dovecot with the user's Dovecot
// password.
func setupNginx(t *testing.T, d *testpeer.DovecotPeer, cert certFiles, noFile int) *nginxSetup {
	t.Helper()
	bin := testpeer.RequirePeer(t, "nginx")
	if _, err := os.Stat(nginxModule); err != nil {
		t.Fatalf("nginx mail module: %v (install libnginx-mod-mail)", err)
	}
	n := &nginxSetup{bin: bin, dir: t.TempDir(), tlsAddr: freeAddr(t), plainAddr: freeAddr(t)}
	secrets := map[string]string{}
	for i := range mailUsers {
		a := load.Account{User: userName(i), Password: appPasswordLike()}
		n.accounts = append(n.accounts, a)
		secrets[a.User] = a.Password
	}
	_, upPort, err := net.SplitHostPort(d.IMAPAddr)
	if err != nil {
		t.Fatal(err)
	}
	auth := startAuthHTTP(t, authResponder{secrets: secrets, dovecot: d.Users, port: upPort})
	var conf bytes.Buffer
	err = nginxConfig.Execute(&conf, map[string]any{
		"Module": nginxModule, "Dir": n.dir, "NoFile": noFile, "Auth": auth,
		"Cert": cert.cert, "Key": cert.key, "PlainAddr": n.plainAddr, "TLSAddr": n.tlsAddr,
	})
	if err != nil {
		t.Fatal(err)
	}
	n.conf = filepath.Join(n.dir, "nginx.conf")
	if err := os.WriteFile(n.conf, conf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return n
}

// start runs nginx in the foreground and waits until both listeners answer.
func (n *nginxSetup) start(t *testing.T) *process {
	t.Helper()
	proc := startProcess(t, n.dir, "nginx", n.bin, "-p", n.dir, "-c", n.conf, "-e", filepath.Join(n.dir, "error.log"))
	proc.waitGreeting(t, n.tlsAddr, n.plainAddr)
	return proc
}

// appPasswordLike is a secret shaped like postern's app passwords: 24
// lowercase letters.
func appPasswordLike() string {
	const letters = "abcdefghijklmnopqrstuvwxyz"
	out := make([]byte, 0, 24)
	var b [64]byte
	for len(out) < cap(out) {
		rand.Read(b[:])
		for _, c := range b {
			// Below 234 = 9 × 26 every letter is equally likely.
			if c < 234 && len(out) < cap(out) {
				out = append(out, letters[c%26])
			}
		}
	}
	return string(out)
}

// authResponder answers nginx's auth_http requests
// (https://nginx.org/en/docs/mail/ngx_mail_auth_http_module.html).
type authResponder struct {
	secrets map[string]string // user → the secret the client must send
	dovecot map[string]string // user → Dovecot password
	port    string            // Dovecot's plain IMAP port
}

func (a authResponder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	user, pass := r.Header.Get("Auth-User"), r.Header.Get("Auth-Pass")
	want, ok := a.secrets[user]
	if !ok || subtle.ConstantTimeCompare([]byte(pass), []byte(want)) != 1 {
		w.Header().Set("Auth-Status", "Invalid login or password")
		w.Header().Set("Auth-Wait", "3")
		return
	}
	w.Header().Set("Auth-Status", "OK")
	w.Header().Set("Auth-Server", "127.0.0.1")
	w.Header().Set("Auth-Port", a.port)
	w.Header().Set("Auth-Pass", a.dovecot[user])
}

// startAuthHTTP serves h on loopback until the test ends and returns its
// host:port.
func startAuthHTTP(t *testing.T, h http.Handler) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("auth_http responder: %v", err)
		}
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}
