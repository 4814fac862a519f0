package dav

import (
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// fakeAuth accepts one user and secret and records the attempts.
type fakeAuth struct {
	user, secret string
	err          error // returned for every attempt when set
	attempts     chan authstore.Attempt
}

func (f *fakeAuth) Authenticate(_ context.Context, a authstore.Attempt) (authstore.Grant, error) {
	if f.attempts != nil {
		f.attempts <- a
	}
	if f.err != nil {
		return authstore.Grant{}, f.err
	}
	if a.Username != f.user || a.Secret != f.secret {
		return authstore.Grant{}, authstore.ErrUnauthorized
	}
	return authstore.Grant{UserID: "u1", Username: f.user, AppPassID: "ap1"}, nil
}

// testEnv is the handler behind the shared front-end harness (HTTPS on
// loopback) in front of an in-process upstream.
type testEnv struct {
	h      *Handler
	front  *fronttest.Front
	url    string // https://127.0.0.1:PORT
	client *http.Client
	reg    *proxy.Registry
}

// newClient is a client of the front-end with its own connections.
func (e *testEnv) newClient(maxConns int) *http.Client {
	return &http.Client{
		Transport:     &http.Transport{TLSClientConfig: e.front.ClientTLS, MaxConnsPerHost: maxConns},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

func newTestEnv(t *testing.T, auth proxy.Authenticator, upstream http.Handler, mod func(*Config)) *testEnv {
	t.Helper()
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL)
	reg := proxy.NewRegistry()
	cfg := Config{Auth: auth, Registry: reg, Upstream: u, CalDAVPath: "/dav/calendars/", CardDAVPath: "/dav/contacts/",
		CalDAVPrefixes: []string{"/dav/calendars/"}, CardDAVPrefixes: []string{"/dav/contacts/"}}
	cfg.AccountURL = "https://example.org/account"
	if mod != nil {
		mod(&cfg)
	}
	h, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	env := &testEnv{h: h, front: fronttest.StartHTTPS(t, h, ConnContext), reg: reg}
	env.url = "https://" + env.front.Addr
	env.client = env.newClient(0)
	return env
}

func TestKickCancelsLiveRequest(t *testing.T) {
	auth := &fakeAuth{user: "alice", secret: "s3cret"}
	upstreamGot := make(chan struct{}, 1)
	env := newTestEnv(t, auth, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamGot <- struct{}{}
		io.Copy(io.Discard, r.Body)
	}), nil)
	env.kickHeld(t, "PUT /dav/calendars/x.ics", "Content-Length: 100000\r\n\r\nBEGIN:", upstreamGot)
}

// kickHeld sends alice's request line, then head, the rest of the request
// (its last headers and a body), on a connection of its own; once the
// upstream reports it on reached, it kicks alice's app password and
// expects the connection closed within a second.
func (e *testEnv) kickHeld(t *testing.T, line, head string, reached <-chan struct{}) {
	t.Helper()
	c := e.front.Dial(t)
	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("alice", "s3cret")
	c.Write(fmt.Sprintf("%s HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\n%s", line, r.Header.Get("Authorization"), head))
	select {
	case <-reached:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s never reached the upstream", line)
	}
	if n := e.reg.Kick(proxy.Filter{AppPassID: "ap1"}, "revoked"); n != 1 {
		t.Fatalf("kick ended %d requests, want 1", n)
	}
	if !c.ClosedWithin(time.Second) {
		t.Errorf("the kicked %s's connection stayed open past a second", line)
	}
}

// call sends method path with alice's credential and returns the status.
func (e *testEnv) call(t *testing.T, method, path string) int {
	t.Helper()
	req, _ := http.NewRequest(method, e.url+path, strings.NewReader("body"))
	req.SetBasicAuth("alice", "s3cret")
	resp, err := e.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func TestUpstreamRequestHeaders(t *testing.T) {
	got := make(chan http.Header, 1)
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- r.Header.Clone()
		w.WriteHeader(http.StatusMultiStatus)
	}), nil)
	req, _ := http.NewRequest("PROPFIND", env.url+"/dav/calendars/alice/", nil)
	req.SetBasicAuth("alice", "s3cret")
	req.Header.Add("X-Remote-User", "root")
	req.Header.Add("x-remote-user", "admin")
	req.Header.Set("Proxy-Authorization", "Basic Zm9vOmJhcg==")
	req.Header.Set("Connection", "X-Hop")
	req.Header.Set("X-Hop", "1")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	h := <-got
	if v := h.Values("X-Remote-User"); len(v) != 1 || v[0] != "alice" {
		t.Errorf("X-Remote-User upstream = %q, want exactly [alice]", v)
	}
	for _, k := range []string{"Authorization", "Proxy-Authorization", "X-Hop"} {
		if v := h.Values(k); len(v) != 0 {
			t.Errorf("%s reached the upstream: %q", k, v)
		}
	}
}

func TestStoredUpstreamAuth(t *testing.T) {
	got := make(chan string, 1)
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, _ := r.BasicAuth()
		got <- u + ":" + p + ":" + r.Header.Get("X-Remote-User")
	}), func(c *Config) {
		c.UpstreamAuth = StoredAuth
		c.UpstreamPassword = func(_ context.Context, user string) (string, error) { return "upstream-" + user, nil }
	})
	req, _ := http.NewRequest("GET", env.url+"/dav/calendars/alice/x.ics", nil)
	req.SetBasicAuth("alice", "s3cret")
	req.Header.Set("X-Remote-User", "root")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if g := <-got; g != "alice:upstream-alice:" {
		t.Errorf("upstream saw %q, want alice's stored password and no trusted header", g)
	}
}

func TestAnswers(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusMultiStatus) })
	tests := []struct {
		name       string
		auth       *fakeAuth
		upstreamUp bool
		user, pw   string
		want       int
		header     string // a header the answer must carry, "Name: value"
	}{
		{"no credentials", &fakeAuth{user: "alice", secret: "pw"}, true, "", "", 401, `Www-Authenticate: Basic realm="postern", charset="UTF-8"`},
		{"wrong password", &fakeAuth{user: "alice", secret: "pw"}, true, "alice", "nope", 401, `Www-Authenticate: Basic realm="postern", charset="UTF-8"`},
		{"right password", &fakeAuth{user: "alice", secret: "pw"}, true, "alice", "pw", 207, ""},
		{"store down", &fakeAuth{err: fmt.Errorf("disk: %w", authstore.ErrUnavailable)}, true, "alice", "pw", 503, "Retry-After: " + retryAfter},
		{"upstream down", &fakeAuth{user: "alice", secret: "pw"}, false, "alice", "pw", 503, "Retry-After: " + retryAfter},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := newTestEnv(t, tt.auth, ok, nil)
			if !tt.upstreamUp {
				env.h.cfg.Upstream.Host = testpeer.Fault(t, testpeer.FaultDown)
			}
			req, _ := http.NewRequest("PROPFIND", env.url+"/dav/calendars/", nil)
			if tt.user != "" {
				req.SetBasicAuth(tt.user, tt.pw)
			}
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d (%s)", resp.StatusCode, tt.want, body)
			}
			if tt.header != "" {
				k, v, _ := strings.Cut(tt.header, ": ")
				if resp.Header.Get(k) != v {
					t.Errorf("%s = %q, want %q", k, resp.Header.Get(k), v)
				}
			}
			if tt.want == 401 && !strings.Contains(string(body), "https://example.org/account") {
				t.Errorf("401 body %q lacks the account URL", body)
			}
		})
	}
}

// TestHintWithoutAccountURL: without an account page the 401 still says
// what the mail front-ends say, an app password is needed.
func TestHintWithoutAccountURL(t *testing.T) {
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "pw"}, http.NotFoundHandler(), func(c *Config) { c.AccountURL = "" })
	req, _ := http.NewRequest("PROPFIND", env.url+"/dav/calendars/", nil)
	req.SetBasicAuth("alice", "nope")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	const want = "Authentication failed. Calendar and contacts apps need an app password.\n"
	if resp.StatusCode != http.StatusUnauthorized || string(body) != want {
		t.Errorf("answer %d %q, want 401 %q", resp.StatusCode, body, want)
	}
}

func TestProtocolByPrefix(t *testing.T) {
	h, err := New(Config{Upstream: &url.URL{Scheme: "http", Host: "x"},
		CalDAVPrefixes: []string{"/dav/calendars/", "/*/calendar/"}, CardDAVPrefixes: []string{"/dav/", "/*/contacts/"}})
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]authstore.Protocol{
		"/dav/calendars/alice/x.ics": authstore.CalDAV, // longer than /dav/
		"/dav/addressbooks/alice/":   authstore.CardDAV,
		"/alice/calendar/e.ics":      authstore.CalDAV,
		"/alice/contacts/":           authstore.CardDAV,
		"/alice/":                    authstore.DAV,
		"/":                          authstore.DAV,
		"/alice/calendars/":          authstore.DAV,
	} {
		if got := h.protocolOf(path); got != want {
			t.Errorf("%s: %s, want %s", path, got, want)
		}
	}
}

func TestClientAddr(t *testing.T) {
	h, err := New(Config{Upstream: &url.URL{Scheme: "http", Host: "x"},
		TrustedProxies: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct{ remote, xff, want string }{
		{"192.0.2.7:4000", "198.51.100.1", "192.0.2.7:4000"},                       // untrusted peer: header ignored
		{"10.1.1.1:4000", "198.51.100.1", "198.51.100.1:0"},                        // trusted proxy
		{"10.1.1.1:4000", "203.0.113.9, 198.51.100.1, 10.2.2.2", "198.51.100.1:0"}, // the nearest untrusted hop
		{"10.1.1.1:4000", "garbage", "10.1.1.1:4000"},
		{"[::ffff:192.0.2.7]:4000", "", "192.0.2.7:4000"},
	}
	for _, tt := range tests {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = tt.remote
		if tt.xff != "" {
			r.Header.Set("X-Forwarded-For", tt.xff)
		}
		if got := h.clientAddr(r).String(); got != tt.want {
			t.Errorf("%s with %q: %s, want %s", tt.remote, tt.xff, got, tt.want)
		}
	}
}

func TestWellKnown(t *testing.T) {
	env := newTestEnv(t, &fakeAuth{}, http.NotFoundHandler(), nil)
	client := env.client
	for wk, want := range map[string]string{"/.well-known/caldav": "/dav/calendars/", "/.well-known/carddav": "/dav/contacts/"} {
		req, _ := http.NewRequest("PROPFIND", env.url+wk, nil)
		req.Host = "evil.example"
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusMovedPermanently || resp.Header.Get("Location") != want {
			t.Errorf("%s: %d %q, want 301 %q", wk, resp.StatusCode, resp.Header.Get("Location"), want)
		}
	}
}

// TestRenewalPerConnection: the second request on a connection with the
// same credential is a renewal; another credential, or a failure between,
// is not.
func TestRenewalPerConnection(t *testing.T) {
	auth := &fakeAuth{user: "alice", secret: "s3cret", attempts: make(chan authstore.Attempt, 10)}
	env := newTestEnv(t, auth, http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}), nil)
	client := env.newClient(1)
	for i, tc := range []struct {
		secret  string
		renewal bool
	}{{"s3cret", false}, {"s3cret", true}, {"wrong", false}, {"s3cret", false}, {"s3cret", true}} {
		req, _ := http.NewRequest("GET", env.url+"/dav/calendars/alice/", nil)
		req.SetBasicAuth("alice", tc.secret)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if a := <-auth.attempts; a.Renewal != tc.renewal {
			t.Errorf("request %d: renewal %v, want %v", i, a.Renewal, tc.renewal)
		}
	}
}

// TestAnswersStream: a large answer reaches the client while the upstream
// is still writing it (nothing buffers whole bodies).
func TestAnswersStream(t *testing.T) {
	release := make(chan struct{})
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusMultiStatus)
		w.Write([]byte(strings.Repeat("x", 256<<10)))
		w.(http.Flusher).Flush()
		<-release // the rest only once the client has the first part
		w.Write([]byte("end"))
	}), nil)
	req, _ := http.NewRequest("REPORT", env.url+"/dav/calendars/alice/", nil)
	req.SetBasicAuth("alice", "s3cret")
	resp, err := env.client.Do(req)
	if err != nil {
		close(release)
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := make([]byte, 128<<10)
	got := make(chan error, 1)
	go func() { _, err := io.ReadFull(resp.Body, first); got <- err }()
	select {
	case err := <-got:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first 128 KiB did not arrive while the upstream was still answering")
	}
	close(release)
	rest, _ := io.ReadAll(resp.Body)
	if !strings.HasSuffix(string(rest), "end") {
		t.Errorf("answer ends %q", rest[max(0, len(rest)-10):])
	}
}

// TestW5_GatewayErrorIsNoSignIn: an upstream that answers a gateway error
// (a web server in front of a DAV server that is down) is passed on, and
// the credential store audits that outcome, not a sign-in; an answer from
// the DAV server itself is the sign-in.
func TestW5_GatewayErrorIsNoSignIn(t *testing.T) {
	keys, err := authstore.NewKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := authstore.Open(filepath.Join(t.TempDir(), "postern.db"), authstore.Options{Keys: keys,
		KDF: authstore.KDFParams{Memory: 64, Time: 1, Threads: 1}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := context.Background()
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: "alice", Password: "correct-horse-battery"}); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		status int
		want   string
	}{
		{http.StatusBadGateway, "unavailable upstream_error"},
		{http.StatusServiceUnavailable, "unavailable upstream_error"},
		{http.StatusGatewayTimeout, "unavailable upstream_error"},
		{http.StatusMultiStatus, "ok account_password"},
		{http.StatusNotFound, "ok account_password"},
	} {
		t.Run(http.StatusText(tt.status), func(t *testing.T) {
			env := newTestEnv(t, st, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(tt.status) }), nil)
			req, _ := http.NewRequest("PROPFIND", env.url+"/dav/calendars/", nil)
			req.SetBasicAuth("alice", "correct-horse-battery")
			resp, err := env.client.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want the upstream's %d", resp.StatusCode, tt.status)
			}
			st.FlushAudit()
			evs, err := st.AuditTail(ctx, 1)
			if err != nil {
				t.Fatal(err)
			}
			if got := evs[0].Result + " " + evs[0].Reason; evs[0].Kind != "login" || got != tt.want {
				t.Errorf("audited %s %q, want login %q", evs[0].Kind, got, tt.want)
			}
		})
	}
}
