package main

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/testpeer"
)

// davE2E is one running gateway with only its DAV listener, in front of a
// real Radicale.
type davE2E struct {
	peer     *testpeer.RadicalePeer
	g        *gateway
	base     string // https://127.0.0.1:PORT
	roots    *x509.CertPool
	certFile string
	logs     *e2eLog
	client   *http.Client
	secrets  []w6Secret // every secret created, for W6
	sw       *switchedUpstream
}

type davOptions struct {
	// switched puts a forwarder that the test can switch off between
	// postern and Radicale (davE2E.sw).
	switched bool
	// switchedOff starts the switched forwarder off: the gateway's first
	// probe of upstream.dav fails.
	switchedOff bool
	// upstream replaces Radicale; upstreamExtra are more [upstream.dav] lines.
	upstream      string
	upstreamExtra []string
	limits        []string // extra [limits] lines
	dav           []string // extra [dav] lines
	tables        []string // more tables, after the others
	// radicale starts Radicale with these options.
	radicale testpeer.RadicaleOptions
}

// calPrefix and cardPrefix are the collections the tests create under
// each user's principal; the gateway's prefixes tell them apart.
const (
	calPrefix  = "calendar"
	cardPrefix = "contacts"
)

func startDAVE2E(t *testing.T, opts davOptions) *davE2E {
	t.Helper()
	e := &davE2E{logs: &e2eLog{}}
	up := opts.upstream
	if up == "" {
		e.peer = testpeer.RadicaleWith(t, opts.radicale)
		up = e.peer.URL
	}
	if opts.switched {
		e.sw = newSwitchedUpstream(t, e.peer.Addr)
		up = "http://" + e.sw.addr + "/"
		if opts.switchedOff {
			e.sw.off()
		}
	}
	dir := t.TempDir()
	q := strconv.Quote
	text := fmt.Sprintf(`data_dir = %s
key_file = %s

[tls]
self_signed = true

[imap]
listen_tls = ""
listen_starttls = ""

[pop3]
listen_tls = ""
listen_stls = ""

[dav]
listen = "127.0.0.1:0"
caldav_path = "/"
carddav_path = "/"
caldav_prefixes = ["/*/%s/"]
carddav_prefixes = ["/*/%s/"]
%s

[admin]
listen = "127.0.0.1:0"
public_url = "https://mail.example.org/account"

[upstream.dav]
url = %s
%s

[limits]
%s
%s
`, q(filepath.Join(dir, "data")), q(filepath.Join(dir, "keys", "postern.key")), calPrefix, cardPrefix, strings.Join(opts.dav, "\n"),
		q(up), strings.Join(opts.upstreamExtra, "\n"), limitLines(opts.limits), strings.Join(opts.tables, "\n"))
	cfg, err := config.Parse([]byte(text), "dav.toml")
	if err != nil {
		t.Fatalf("configuration: %v", err)
	}
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	if e.g, err = startGateway(cfg, log); err != nil {
		t.Fatalf("start gateway: %v", err)
	}
	t.Cleanup(func() {
		audit := (&e2e{g: e.g}).auditText()
		ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
		defer cancel()
		if err := e.g.shutdown(ctx); err != nil {
			t.Errorf("gateway shutdown: %v", err)
		}
		w6Seen.add(w6Record{test: t.Name(), logs: e.logs.String(), audit: audit, secrets: e.secrets})
		if t.Failed() {
			t.Logf("gateway log:\n%s", e.logs.String())
		}
	})
	e.certFile = filepath.Join(cfg.DataDir, "tls", "cert.pem")
	pem, err := os.ReadFile(e.certFile)
	if err != nil {
		t.Fatal(err)
	}
	e.roots = x509.NewCertPool()
	e.roots.AppendCertsFromPEM(pem)
	e.base = "https://" + e.g.addrs["dav"]
	e.client = e.newClient()
	return e
}

func (e *davE2E) tlsConfig() *tls.Config {
	return &tls.Config{RootCAs: e.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
}

// newClient is an HTTPS client with its own connections.
func (e *davE2E) newClient() *http.Client { return e.clientFrom("") }

// clientFrom is an HTTPS client whose connections come from src.
func (e *davE2E) clientFrom(src string) *http.Client {
	return &http.Client{Timeout: e2eIO, Transport: &http.Transport{TLSClientConfig: e.tlsConfig(), ForceAttemptHTTP2: true,
		DialContext: dialer(src).DialContext},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

// user creates an account and returns its account password.
func (e *davE2E) user(t *testing.T, name string, twoStep bool) string {
	t.Helper()
	ctx := e2eCtx()
	pw := rand.Text()
	e.secrets = append(e.secrets, w6Secret{"account password of " + name, name, pw, ""})
	if _, err := e.g.store.CreateUser(ctx, authstore.NewUser{Name: name, Password: pw}); err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	if twoStep {
		enr, err := e.g.store.BeginTOTP(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		e.secrets = append(e.secrets, w6Secret{"TOTP secret of " + name, name, enr.Secret, ""})
		code, _ := totp.GenerateCode(enr.Secret, time.Now())
		if _, err := e.g.store.ConfirmTOTP(ctx, name, code); err != nil {
			t.Fatal(err)
		}
	}
	return pw
}

// appPassword creates an app password with scopes (all when none).
func (e *davE2E) appPassword(t *testing.T, user string, scopes ...authstore.Protocol) (id, secret string) {
	t.Helper()
	ap, grouped, err := e.g.store.CreateAppPassword(e2eCtx(), user, authstore.NewAppPassword{Name: "calendar app", Scopes: scopes})
	if err != nil {
		t.Fatalf("create app password: %v", err)
	}
	secret = strings.ReplaceAll(grouped, " ", "")
	e.secrets = append(e.secrets, w6Secret{"app password " + ap.ID + " of " + user, user, secret, ""})
	return ap.ID, secret
}

// do sends one request through postern and returns status, headers and body.
func (e *davE2E) do(t *testing.T, method, path, user, secret string, hdr map[string]string, body string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, secret)
	}
	for k, v := range hdr {
		if strings.EqualFold(k, "Host") {
			req.Host = v
			continue
		}
		req.Header.Set(k, v)
	}
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

const propfindBody = `<?xml version="1.0" encoding="utf-8"?><d:propfind xmlns:d="DAV:"><d:prop><d:resourcetype/></d:prop></d:propfind>`

// mkcol creates the calendar and the address book of user through postern.
func (e *davE2E) mkcol(t *testing.T, user, secret string) {
	t.Helper()
	if code, _, body := e.do(t, "MKCALENDAR", "/"+user+"/"+calPrefix+"/", user, secret, nil, ""); code != http.StatusCreated {
		t.Fatalf("MKCALENDAR: %d %s", code, body)
	}
	mk := `<?xml version="1.0" encoding="utf-8"?><d:mkcol xmlns:d="DAV:" xmlns:c="urn:ietf:params:xml:ns:carddav"><d:set><d:prop>` +
		`<d:resourcetype><d:collection/><c:addressbook/></d:resourcetype></d:prop></d:set></d:mkcol>`
	if code, _, body := e.do(t, "MKCOL", "/"+user+"/"+cardPrefix+"/", user, secret, map[string]string{"Content-Type": "application/xml"}, mk); code != http.StatusCreated {
		t.Fatalf("MKCOL addressbook: %d %s", code, body)
	}
}

// basicClient adds Basic credentials to every request of a go-webdav client.
type basicClient struct {
	c            *http.Client
	user, secret string
}

func (b basicClient) Do(r *http.Request) (*http.Response, error) {
	r.SetBasicAuth(b.user, b.secret)
	return b.c.Do(r)
}
