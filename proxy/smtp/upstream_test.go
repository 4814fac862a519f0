package smtp

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
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

const masterSecret = "master-secret-9f3k"

// fakeUpstream is a scripted SMTP server that records every line it gets.
type fakeUpstream struct {
	greeting string              // sent with CRLF added; empty: hang up
	replies  map[string][]string // verb → reply lines; default 502
	tls      *tls.Config         // for STARTTLS
	trailer  string              // written after the last reply of the login
	early    map[string][]string // verb → reply before the first EHLO, where it differs
}

// upstreamEHLO is a Postfix-like EHLO answer offering XCLIENT.
var upstreamEHLO = []string{"250-up.example", "250-PIPELINING", "250-STARTTLS", "250-AUTH PLAIN LOGIN",
	"250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN", "250 CHUNKING"}

func upstreamReplies(extra map[string][]string) map[string][]string {
	m := map[string][]string{"EHLO": upstreamEHLO, "XCLIENT": {"220 up.example ESMTP"}, "AUTH": {"235 2.7.0 Authentication successful"},
		"STARTTLS": {"220 2.0.0 Ready to start TLS"}}
	for k, v := range extra {
		m[k] = v
	}
	return m
}

// run serves one connection and returns, once the peer closes, the lines
// received; lines received inside TLS are prefixed with "tls ".
func (f fakeUpstream) run(t *testing.T, ln net.Listener) []string {
	raw, err := ln.Accept()
	ln.Close()
	if err != nil {
		t.Errorf("accept: %v", err)
		return nil
	}
	defer raw.Close()
	if f.greeting == "" {
		return nil
	}
	_ = raw.SetDeadline(time.Now().Add(fronttest.IOGuard))
	var conn net.Conn = raw
	io.WriteString(conn, f.greeting+"\r\n")
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
		verb, _, _ := strings.Cut(line, " ")
		reply, ok := f.early[strings.ToUpper(verb)]
		if !ok || slices.ContainsFunc(got, func(l string) bool { return strings.HasPrefix(l, "EHLO ") }) {
			reply, ok = f.replies[strings.ToUpper(verb)]
		}
		if !ok {
			reply = []string{"502 5.5.2 Error: command not recognized"}
		}
		out := strings.Join(reply, "\r\n") + "\r\n"
		if strings.EqualFold(verb, "EHLO") && len(got) > 1 {
			out += f.trailer // in the same write as the reply it follows
		}
		io.WriteString(conn, out)
		if strings.EqualFold(verb, "STARTTLS") && strings.HasPrefix(reply[0], "220") {
			tc := tls.Server(raw, f.tls)
			if tc.Handshake() != nil {
				return got
			}
			conn, r, prefix = tc, bufio.NewReader(tc), "tls "
		}
	}
}

// upstreamLogin runs UpstreamLogin against f and returns what it learned,
// its error and the lines f received.
func upstreamLogin(t *testing.T, f fakeUpstream, cfg Config, user string, info proxy.ClientInfo) (proxy.UpstreamResult, []string, error) {
	t.Helper()
	cfg.Hostname = testHost
	return loginTo(t, New(cfg), f, user, info)
}

// loginTo runs p's UpstreamLogin against f.
func loginTo(t *testing.T, p *Protocol, f fakeUpstream, user string, info proxy.ClientInfo) (proxy.UpstreamResult, []string, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan []string, 1)
	go func() { lines <- f.run(t, ln) }()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), fronttest.IOGuard)
	defer cancel()
	res, loginErr := p.UpstreamLogin(ctx, proxy.NewConn(raw), user, info)
	raw.Close()
	return res, <-lines, loginErr
}

func TestUpstreamLogin(t *testing.T) {
	serverTLS, clientTLS := newTestTLS(t)
	master := Config{Login: LoginMaster, UpstreamCredential: proxy.UpstreamCredential{MasterUser: "postern", MasterPassword: masterSecret}}
	withTLS := func(c Config) Config { c.UpstreamTLS = clientTLS; return c }
	client := proxy.ClientInfo{Addr: netip.MustParseAddrPort("192.0.2.7:40123"), SessionID: "s1", Hello: "phone.example"}
	xclient := "XCLIENT LOGIN=alice ADDR=192.0.2.7 PORT=40123 NAME=[UNAVAILABLE] HELO=phone.example PROTO=ESMTP"
	authMaster := "AUTH PLAIN " + b64("alice\x00postern\x00"+masterSecret)
	ok := fakeUpstream{greeting: "220 up.example ESMTP", replies: upstreamReplies(nil), tls: serverTLS}
	with := func(extra map[string][]string) fakeUpstream {
		f := ok
		f.replies = upstreamReplies(extra)
		return f
	}
	cases := []struct {
		name      string
		up        fakeUpstream
		cfg       Config
		user      string
		info      proxy.ClientInfo
		wantLines []string
		wantErr   []error // nil: success
	}{
		{name: "xclient", up: ok, info: client, wantLines: []string{"EHLO " + testHost, xclient, "EHLO phone.example"}},
		{name: "xclient without client name or address", up: ok,
			wantLines: []string{"EHLO " + testHost, "XCLIENT LOGIN=alice ADDR=[UNAVAILABLE] PORT=[UNAVAILABLE] NAME=[UNAVAILABLE] HELO=[UNAVAILABLE] PROTO=ESMTP", "EHLO " + testHost}},
		{name: "xclient IPv6, user xtext-encoded", up: ok, user: "al+ice=x y",
			info:      proxy.ClientInfo{Addr: netip.MustParseAddrPort("[2001:db8::1]:50000"), Hello: "[IPv6:2001:db8::1]"},
			wantLines: []string{"EHLO " + testHost, "XCLIENT LOGIN=al+2Bice+3Dx+20y ADDR=IPV6:2001:db8::1 PORT=50000 NAME=[UNAVAILABLE] HELO=[IPv6:2001:db8::1] PROTO=ESMTP", "EHLO [IPv6:2001:db8::1]"}},
		{name: "xclient with the attributes offered", up: with(map[string][]string{"EHLO": {"250-up", "250-XCLIENT LOGIN ADDR", "250 CHUNKING"}}), info: client,
			wantLines: []string{"EHLO " + testHost, "XCLIENT LOGIN=alice ADDR=192.0.2.7", "EHLO phone.example"}},
		{name: "xclient not offered", up: with(map[string][]string{"EHLO": {"250-up", "250 PIPELINING"}}), info: client,
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrLoginRefused, errNoXClient}},
		{name: "xclient without LOGIN", up: with(map[string][]string{"EHLO": {"250-up", "250 XCLIENT ADDR NAME"}}), info: client,
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errNoLoginAttr}},
		{name: "xclient refused", up: with(map[string][]string{"XCLIENT": {"550 5.7.0 Error: insufficient authorization"}}), info: client,
			wantLines: []string{"EHLO " + testHost, xclient}, wantErr: []error{proxy.ErrLoginRefused}},
		{name: "xclient deferred", up: with(map[string][]string{"XCLIENT": {"421 4.3.2 Shutting down"}}), info: client,
			wantLines: []string{"EHLO " + testHost, xclient}, wantErr: []error{proxy.ErrUpstream}},
		{name: "master", up: ok, cfg: master, info: client, wantLines: []string{"EHLO " + testHost, authMaster}},
		{name: "master refused", up: with(map[string][]string{"AUTH": {"535 5.7.8 Error: authentication failed"}}), cfg: master,
			wantLines: []string{"EHLO " + testHost, authMaster}, wantErr: []error{proxy.ErrLoginRefused}},
		{name: "master without AUTH PLAIN", up: with(map[string][]string{"EHLO": {"250-up", "250 AUTH LOGIN"}}), cfg: master,
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errNoAuthPlain}},
		{name: "master not configured", up: ok, cfg: Config{Login: LoginMaster}, wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errNoCredential}},
		{name: "master password with CR", up: ok, cfg: Config{Login: LoginMaster, UpstreamCredential: proxy.UpstreamCredential{MasterUser: "m", MasterPassword: "a\rb"}},
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errUnsafeArgument}},
		{name: "STARTTLS then xclient", up: ok, cfg: withTLS(Config{}), info: client,
			wantLines: []string{"EHLO " + testHost, "STARTTLS", "tls EHLO " + testHost, "tls " + xclient, "tls EHLO phone.example"}},
		{name: "STARTTLS not offered", up: with(map[string][]string{"EHLO": {"250-up", "250 XCLIENT LOGIN"}}), cfg: withTLS(Config{}),
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errNoSTARTTLS}},
		{name: "STARTTLS refused", up: with(map[string][]string{"STARTTLS": {"454 4.7.0 TLS not available"}}), cfg: withTLS(Config{}),
			wantLines: []string{"EHLO " + testHost, "STARTTLS"}, wantErr: []error{proxy.ErrUpstream}},
		{name: "STARTTLS certificate not trusted", up: ok, cfg: Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: untrustedTLS(t)}},
			wantLines: []string{"EHLO " + testHost, "STARTTLS"}, wantErr: []error{proxy.ErrUpstream}},
		{name: "STARTTLS reply with injected data", up: with(map[string][]string{"STARTTLS": {"220 go ahead", "250 injected"}}), cfg: withTLS(Config{}),
			wantLines: []string{"EHLO " + testHost, "STARTTLS"}, wantErr: []error{proxy.ErrUpstream, errExtraData}},
		{name: "data after the login", up: fakeUpstream{greeting: "220 up", replies: upstreamReplies(nil), trailer: "250 unasked\r\n"}, info: client,
			wantLines: []string{"EHLO " + testHost, xclient, "EHLO phone.example"}, wantErr: []error{proxy.ErrUpstream, errExtraData}},
		{name: "greeting refused", up: fakeUpstream{greeting: "554 5.3.2 no service"}, wantErr: []error{proxy.ErrUpstream}},
		{name: "greeting missing", up: fakeUpstream{}, wantErr: []error{proxy.ErrUpstream, io.EOF}},
		{name: "greeting malformed", up: fakeUpstream{greeting: "hello"}, wantErr: []error{proxy.ErrUpstream, errReplySyntax}},
		{name: "huge greeting", up: fakeUpstream{greeting: "220 " + strings.Repeat("x", 1<<20)}, wantErr: []error{proxy.ErrUpstream, proxy.ErrLineTooLong}},
		{name: "endless EHLO answer", up: with(map[string][]string{"EHLO": slices.Repeat([]string{"250-X"}, 200)}),
			wantLines: []string{"EHLO " + testHost}, wantErr: []error{proxy.ErrUpstream, errReplyLong}},
		{name: "user with CRLF", up: ok, user: "alice\r\nMAIL FROM:<x>", wantErr: []error{proxy.ErrUpstream, errUnsafeArgument}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			user := tc.user
			if user == "" {
				user = "alice"
			}
			res, lines, err := upstreamLogin(t, tc.up, tc.cfg, user, tc.info)
			if !slices.Equal(lines, tc.wantLines) {
				t.Errorf("upstream received\n%q, want\n%q", lines, tc.wantLines)
			}
			if tc.wantErr == nil {
				if err != nil {
					t.Fatalf("UpstreamLogin: %v", err)
				}
				if !hasKeyword(res.Capabilities, "CHUNKING") {
					t.Errorf("capabilities %q lack the upstream's CHUNKING", res.Capabilities)
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
			if strings.Contains(err.Error(), masterSecret) || strings.Contains(err.Error(), b64(masterSecret)) {
				t.Errorf("error %q reveals a secret", err)
			}
		})
	}
}

// TestXClientAtOnce: once an EHLO answer listed XCLIENT, a login sends it
// right after the greeting, with the attributes offered, and says EHLO as
// the client once: one round trip fewer. Not with STARTTLS (the EHLO must
// come first) nor for a master user; not after the probe saw no XCLIENT.
// An upstream that wants EHLO first gets it on the same connection, and
// from then on always.
func TestXClientAtOnce(t *testing.T) {
	client := proxy.ClientInfo{Addr: netip.MustParseAddrPort("192.0.2.7:40123"), Hello: "phone.example"}
	xclient := "XCLIENT LOGIN=alice ADDR=192.0.2.7 PORT=40123 NAME=[UNAVAILABLE] HELO=phone.example PROTO=ESMTP"
	serverTLS, clientTLS := newTestTLS(t)
	ok := fakeUpstream{greeting: "220 up.example ESMTP", replies: upstreamReplies(nil), tls: serverTLS}
	wantsEHLO := ok
	wantsEHLO.early = map[string][]string{"XCLIENT": {"503 5.5.1 Error: send HELO/EHLO first"}}
	deferred := ok
	deferred.early = map[string][]string{"XCLIENT": {"421 4.3.2 Shutting down"}}
	usual := []string{"EHLO " + testHost, xclient, "EHLO phone.example"}
	atOnce := []string{xclient, "EHLO phone.example"}
	withTLS := []string{"EHLO " + testHost, "STARTTLS", "tls EHLO " + testHost, "tls " + xclient, "tls EHLO phone.example"}
	cases := []struct {
		name   string
		cfg    func(Config) Config
		up     fakeUpstream
		probe  []string // an EHLO answer the probe saw first, if any
		want   [][]string
		failed bool // the first login fails
	}{
		{name: "known from the probe", up: ok, want: [][]string{atOnce, atOnce}},
		{name: "learned from the first login", cfg: func(c Config) Config { c.Upstream = nil; return c }, up: ok,
			want: [][]string{usual, atOnce}},
		{name: "STARTTLS", cfg: func(c Config) Config { c.UpstreamTLS = clientTLS; return c }, up: ok,
			want: [][]string{withTLS, withTLS}},
		{name: "master user", cfg: func(c Config) Config {
			c.Login, c.MasterUser, c.MasterPassword = LoginMaster, "postern", masterSecret
			return c
		}, up: ok, want: [][]string{{"EHLO " + testHost, "AUTH PLAIN " + b64("alice\x00postern\x00"+masterSecret)}}},
		{name: "the probe saw none", up: ok, probe: []string{"250-up", "250 PIPELINING"}, want: [][]string{usual, atOnce}},
		{name: "EHLO wanted first", up: wantsEHLO, want: [][]string{append([]string{xclient}, usual...), usual}},
		{name: "deferred", up: deferred, want: [][]string{{xclient}}, failed: true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			if tc.cfg != nil {
				cfg = tc.cfg(cfg)
			}
			p := New(cfg)
			if tc.probe != nil {
				_ = p.CheckUpstream(tc.probe)
			}
			for i, want := range tc.want {
				_, lines, err := loginTo(t, p, tc.up, "alice", client)
				if (err != nil) != (tc.failed && i == 0) {
					t.Fatalf("login %d: %v", i+1, err)
				}
				if !slices.Equal(lines, want) {
					t.Errorf("login %d: upstream received\n%q, want\n%q", i+1, lines, want)
				}
			}
		})
	}
}

// TestUpstreamLoginRefreshesEHLO: a login teaches the front-end what the
// upstream offers now.
func TestUpstreamLoginRefreshesEHLO(t *testing.T) {
	up := fakeUpstream{greeting: "220 up", replies: upstreamReplies(map[string][]string{"EHLO": {"250-up", "250-XCLIENT LOGIN", "250 8BITMIME"}})}
	p := New(testConfig(t))
	if _, _, err := loginTo(t, p, up, "alice", proxy.ClientInfo{}); err != nil {
		t.Fatal(err)
	}
	if got := p.upstream.Load().offered(); !slices.Equal(got, []string{"8BITMIME"}) {
		t.Errorf("offered after login: %q", got)
	}
}

func newTestTLS(t *testing.T) (server, client *tls.Config) {
	t.Helper()
	server, client = testpeer.TLS(t)
	client.ServerName = "localhost"
	return server, client
}

// untrustedTLS trusts another throwaway certificate only.
func untrustedTLS(t *testing.T) *tls.Config {
	_, client := newTestTLS(t)
	return client
}

// TestCheckUpstream: the probe's EHLO answer is checked against what the
// configured login needs, and kept for the EHLO answers to clients either
// way.
func TestCheckUpstream(t *testing.T) {
	tests := []struct {
		name  string
		login LoginMode
		ehlo  []string
		want  error
	}{
		{"XCLIENT with LOGIN", LoginXClient, []string{"250-up.example", "250-SIZE 1000", "250 XCLIENT ADDR LOGIN"}, nil},
		{"no XCLIENT", LoginXClient, []string{"250-up.example", "250-SIZE 1000", "250 AUTH PLAIN"}, errNoXClient},
		{"XCLIENT without LOGIN", LoginXClient, []string{"250-up.example", "250-SIZE 1000", "250 XCLIENT NAME ADDR"}, errNoLoginAttr},
		{"master with AUTH PLAIN", LoginMaster, []string{"250-up.example", "250-SIZE 1000", "250 AUTH LOGIN PLAIN"}, nil},
		{"master without AUTH", LoginMaster, []string{"250-up.example", "250-SIZE 1000", "250 XCLIENT LOGIN"}, errNoAuthPlain},
		{"not an EHLO answer", LoginXClient, []string{"502 5.5.2 Error: command not recognized"}, errEHLO},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := New(Config{Login: tt.login})
			if err := p.CheckUpstream(tt.ehlo); !errors.Is(err, tt.want) {
				t.Fatalf("CheckUpstream = %v, want %v", err, tt.want)
			}
			if tt.want != errEHLO && !slices.Equal(p.upstream.Load().offered(), []string{"SIZE 1000"}) {
				t.Errorf("offered to clients: %v", p.upstream.Load().offered())
			}
		})
	}
}
