package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

const (
	masterSecret = "master-secret-9f3k"
	storedSecret = "stored-secret-7q2z"
)

// fakeUpstream is a scripted POP3 server that records every line it gets.
type fakeUpstream struct {
	greeting string              // sent as is, CRLF added unless raw
	raw      bool                // greeting without CRLF
	replies  map[string][]string // keyword → reply lines; default -ERR
	tls      *tls.Config         // for STLS
	hangUp   bool                // close before greeting
}

// run serves one connection and returns, once the peer closes, the lines
// received; lines received inside TLS are prefixed with "tls ".
func (f fakeUpstream) run(t *testing.T, ln net.Listener, accepted chan<- struct{}) []string {
	raw, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Errorf("accept: %v", err)
		return nil
	}
	close(accepted)
	defer raw.Close()
	if f.hangUp {
		return nil
	}
	_ = raw.SetDeadline(time.Now().Add(fronttest.IOGuard))
	var conn net.Conn = raw
	end := "\r\n"
	if f.raw {
		end = ""
	}
	if f.greeting != "" {
		io.WriteString(conn, f.greeting+end)
	}
	var got []string
	r := bufio.NewReader(conn)
	prefix := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return got
		}
		line = strings.TrimSuffix(line, "\r\n")
		got = append(got, prefix+line)
		keyword, _, _ := strings.Cut(line, " ")
		reply, ok := f.replies[strings.ToUpper(keyword)]
		if !ok {
			reply = []string{"-ERR Unknown command"}
		}
		io.WriteString(conn, strings.Join(reply, "\r\n")+"\r\n")
		if strings.ToUpper(keyword) == "STLS" && strings.HasPrefix(reply[0], "+OK") {
			tc := tls.Server(raw, f.tls)
			if tc.Handshake() != nil {
				return got
			}
			conn, r, prefix = tc, bufio.NewReader(tc), "tls "
		}
	}
}

// upstreamLogin runs UpstreamLogin against f and returns its error and the
// lines f received.
func upstreamLogin(t *testing.T, ctx context.Context, f fakeUpstream, cfg Config, user string, info proxy.ClientInfo) ([]string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	accepted := make(chan struct{})
	lines := make(chan []string, 1)
	go func() { lines <- f.run(t, ln, accepted) }()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	up := proxy.NewConn(raw)
	<-accepted
	_, loginErr := New(cfg).UpstreamLogin(ctx, up, user, info)
	up.Close()
	return <-lines, loginErr
}

func TestUpstreamLogin(t *testing.T) {
	certs := newTestCerts(t)
	untrusted := newTestCerts(t).client // trusts another throwaway CA only
	master := Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "proxy-master", MasterPassword: masterSecret}}
	stored := Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: func(_ context.Context, user string) (string, error) {
		if user != "alice" {
			return "", errors.New("no stored password")
		}
		return storedSecret, nil
	}}}
	with := func(c Config, edit func(*Config)) Config { edit(&c); return c }
	withTLS := func(c *Config) { c.UpstreamTLS = certs.client }
	withXClient := func(c *Config) { c.XClient = true }
	loggedIn := map[string][]string{"AUTH": {"+OK Logged in."}}
	replies := func(extra map[string][]string) map[string][]string {
		m := map[string][]string{"AUTH": {"+OK Logged in."}}
		for k, v := range extra {
			m[k] = v
		}
		return m
	}
	client := proxy.ClientInfo{Addr: netip.MustParseAddrPort("192.0.2.7:40123"), SessionID: "sess-1"}
	authMaster := "AUTH PLAIN " + b64("alice\x00proxy-master\x00"+masterSecret)
	authStored := "AUTH PLAIN " + b64("\x00alice\x00"+storedSecret)
	xclient := "XCLIENT ADDR=192.0.2.7 PORT=40123 SESSION=sess-1"
	storeDown := errors.New("store down")

	cases := []struct {
		name      string
		up        fakeUpstream
		cfg       Config
		user      string
		info      proxy.ClientInfo
		wantLines []string
		wantErr   []error // nil: success
	}{
		{name: "master user", up: fakeUpstream{greeting: "+OK Dovecot ready.", replies: loggedIn}, cfg: master, wantLines: []string{authMaster}},
		{name: "stored password", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn}, cfg: stored, wantLines: []string{authStored}},
		{
			name: "stored password lookup fails", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn},
			cfg:     Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: func(context.Context, string) (string, error) { return "", storeDown }}},
			wantErr: []error{proxy.ErrUpstream, storeDown},
		},
		{name: "no upstream credential configured", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn}, wantErr: []error{proxy.ErrUpstream}},
		{name: "user with CRLF", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn}, cfg: master, user: "alice\r\nDELE 1", wantErr: []error{proxy.ErrUpstream, errUnsafeArgument}},
		{name: "user with NUL", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn}, cfg: stored, user: "alice\x00x", wantErr: []error{proxy.ErrUpstream, errUnsafeArgument}},
		{name: "master password with NUL", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn}, cfg: Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "m", MasterPassword: "a\x00b"}}, wantErr: []error{proxy.ErrUpstream, errUnsafeArgument}},
		{
			name: "XCLIENT from Dovecot greeting", up: fakeUpstream{greeting: "+OK [XCLIENT] Dovecot ready.", replies: replies(map[string][]string{"XCLIENT": {"+OK Updated"}})},
			cfg: with(master, withXClient), info: client, wantLines: []string{xclient, authMaster},
		},
		{
			name: "XCLIENT from CAPA", up: fakeUpstream{greeting: "+OK ready", replies: replies(map[string][]string{"CAPA": {"+OK", "TOP", "XCLIENT", "SASL PLAIN", "."}, "XCLIENT": {"+OK"}})},
			cfg: with(master, withXClient), info: client, wantLines: []string{"CAPA", xclient, authMaster},
		},
		{
			name: "XCLIENT not offered", up: fakeUpstream{greeting: "+OK ready", replies: replies(map[string][]string{"CAPA": {"+OK", "TOP", "USER", "."}})},
			cfg: with(master, withXClient), info: client, wantLines: []string{"CAPA", authMaster},
		},
		{
			name: "CAPA unsupported", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn},
			cfg: with(master, withXClient), info: client, wantLines: []string{"CAPA", authMaster},
		},
		{
			name: "XCLIENT not configured", up: fakeUpstream{greeting: "+OK [XCLIENT] Dovecot ready.", replies: loggedIn},
			cfg: master, info: client, wantLines: []string{authMaster},
		},
		{
			name: "XCLIENT v4-mapped address, unsafe session id", up: fakeUpstream{greeting: "+OK [XCLIENT] ready", replies: replies(map[string][]string{"XCLIENT": {"+OK"}})},
			cfg: with(master, withXClient), info: proxy.ClientInfo{Addr: netip.MustParseAddrPort("[::ffff:198.51.100.4]:995"), SessionID: "a b\r\nDELE 1"},
			wantLines: []string{"XCLIENT ADDR=198.51.100.4 PORT=995", authMaster},
		},
		{
			name: "XCLIENT IPv6", up: fakeUpstream{greeting: "+OK [XCLIENT] ready", replies: replies(map[string][]string{"XCLIENT": {"+OK"}})},
			cfg: with(master, withXClient), info: proxy.ClientInfo{Addr: netip.MustParseAddrPort("[2001:db8::1]:50000")},
			wantLines: []string{"XCLIENT ADDR=2001:db8::1 PORT=50000", authMaster},
		},
		{
			name: "XCLIENT refused", up: fakeUpstream{greeting: "+OK [XCLIENT] ready", replies: replies(map[string][]string{"XCLIENT": {"-ERR Invalid parameters"}})},
			cfg: with(master, withXClient), info: client, wantLines: []string{xclient}, wantErr: []error{proxy.ErrUpstream},
		},
		{
			name: "STLS", up: fakeUpstream{greeting: "+OK ready", tls: certs.server, replies: replies(map[string][]string{"STLS": {"+OK Begin TLS"}})},
			cfg: with(master, withTLS), wantLines: []string{"STLS", "tls " + authMaster},
		},
		{
			// proxy.Upstream.ClientTLS names the server; a configuration
			// without a name cannot verify anything and fails closed.
			name: "STLS without a server name", up: fakeUpstream{greeting: "+OK ready", tls: certs.server, replies: replies(map[string][]string{"STLS": {"+OK"}})},
			cfg: with(master, func(c *Config) { c.UpstreamTLS = &tls.Config{RootCAs: certs.client.RootCAs} }), wantLines: []string{"STLS"}, wantErr: []error{proxy.ErrUpstream},
		},
		{
			name: "STLS then XCLIENT from CAPA", up: fakeUpstream{greeting: "+OK ready", tls: certs.server,
				replies: replies(map[string][]string{"STLS": {"+OK"}, "CAPA": {"+OK", "XCLIENT", "."}, "XCLIENT": {"+OK"}})},
			cfg: with(with(master, withTLS), withXClient), info: client,
			wantLines: []string{"STLS", "tls CAPA", "tls " + xclient, "tls " + authMaster},
		},
		{
			name: "STLS refused", up: fakeUpstream{greeting: "+OK ready", replies: loggedIn},
			cfg: with(master, withTLS), wantLines: []string{"STLS"}, wantErr: []error{proxy.ErrUpstream},
		},
		{
			name: "STLS certificate not trusted", up: fakeUpstream{greeting: "+OK ready", tls: certs.server, replies: replies(map[string][]string{"STLS": {"+OK"}})},
			cfg: with(master, func(c *Config) { c.UpstreamTLS = untrusted }), wantLines: []string{"STLS"}, wantErr: []error{proxy.ErrUpstream},
		},
		{
			name: "STLS reply with injected data", up: fakeUpstream{greeting: "+OK ready", tls: certs.server, replies: replies(map[string][]string{"STLS": {"+OK", "+OK Logged in."}})},
			cfg: with(master, withTLS), wantLines: []string{"STLS"}, wantErr: []error{proxy.ErrUpstream},
		},
		{
			name: "login refused", up: fakeUpstream{greeting: "+OK ready", replies: map[string][]string{"AUTH": {"-ERR [AUTH] Authentication failed."}}},
			cfg: master, wantLines: []string{authMaster}, wantErr: []error{proxy.ErrUpstream, proxy.ErrLoginRefused},
		},
		{
			name: "login continuation instead of result", up: fakeUpstream{greeting: "+OK ready", replies: map[string][]string{"AUTH": {"+ "}}},
			cfg: master, wantLines: []string{authMaster}, wantErr: []error{proxy.ErrUpstream},
		},
		{name: "greeting -ERR", up: fakeUpstream{greeting: "-ERR [SYS/TEMP] busy"}, cfg: master, wantErr: []error{proxy.ErrUpstream}},
		{name: "greeting missing", up: fakeUpstream{hangUp: true}, cfg: master, wantErr: []error{proxy.ErrUpstream, io.EOF}},
		{name: "PREAUTH-like greeting", up: fakeUpstream{greeting: "+OKAY logged in already", replies: loggedIn}, cfg: master, wantErr: []error{proxy.ErrUpstream}},
		{name: "huge greeting", up: fakeUpstream{greeting: "+OK " + strings.Repeat("x", 1<<20), raw: true}, cfg: master, wantErr: []error{proxy.ErrUpstream, errLineTooLong}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := tc.user
			if user == "" {
				user = "alice"
			}
			ctx, cancel := context.WithTimeout(context.Background(), fronttest.IOGuard)
			defer cancel()
			lines, err := upstreamLogin(t, ctx, tc.up, tc.cfg, user, tc.info)
			if !slices.Equal(lines, tc.wantLines) {
				t.Errorf("upstream received %q, want %q", lines, tc.wantLines)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("UpstreamLogin: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("UpstreamLogin succeeded, want an error")
			}
			for _, want := range tc.wantErr {
				if !errors.Is(err, want) {
					t.Errorf("error %q does not wrap %v", err, want)
				}
			}
			for _, secret := range []string{masterSecret, storedSecret, b64(masterSecret)} {
				if strings.Contains(err.Error(), secret) {
					t.Errorf("error %q reveals a secret", err)
				}
			}
		})
	}
}

// TestUpstreamLoginContext: a silent upstream is left when ctx ends.
func TestUpstreamLoginContext(t *testing.T) {
	for _, tc := range fronttest.ContextEnds {
		t.Run(tc.Name, func(t *testing.T) {
			ctx, cancel := tc.Ctx()
			defer cancel()
			cancel()
			cfg := Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "m", MasterPassword: masterSecret}}
			lines, err := upstreamLogin(t, ctx, fakeUpstream{}, cfg, "alice", proxy.ClientInfo{})
			if !errors.Is(err, proxy.ErrUpstream) || !errors.Is(err, tc.Want) {
				t.Errorf("error = %v, want ErrUpstream and %v", err, tc.Want)
			}
			if len(lines) != 0 {
				t.Errorf("upstream received %q", lines)
			}
		})
	}
}
