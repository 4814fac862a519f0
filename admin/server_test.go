package admin

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net/http/httptest"
	"net/netip"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// TestClientAddr: X-Forwarded-For counts only when the peer is a trusted
// proxy, and then the last hop that is not itself trusted (P8).
func TestClientAddr(t *testing.T) {
	s := &Server{cfg: Config{TrustedProxies: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32"), netip.MustParsePrefix("10.0.0.0/8")}}}
	cases := []struct {
		peer string
		xff  []string
		want string
	}{
		{"192.0.2.1:1", nil, "192.0.2.1"},
		{"192.0.2.1:1", []string{"198.51.100.1"}, "192.0.2.1"}, // untrusted peer: header ignored
		{"127.0.0.1:1", []string{"198.51.100.1"}, "198.51.100.1"},
		{"127.0.0.1:1", []string{"6.6.6.6, 198.51.100.1, 10.1.1.1"}, "198.51.100.1"}, // a client-sent first hop is not believed
		{"127.0.0.1:1", []string{"6.6.6.6", "198.51.100.2"}, "198.51.100.2"},
		{"127.0.0.1:1", []string{"junk"}, "127.0.0.1"},
		{"127.0.0.1:1", nil, "127.0.0.1"},
		{"[::ffff:127.0.0.1]:1", []string{"198.51.100.3"}, "198.51.100.3"},
	}
	for _, c := range cases {
		r := httptest.NewRequest("GET", "/", nil)
		r.RemoteAddr = c.peer
		for _, v := range c.xff {
			r.Header.Add("X-Forwarded-For", v)
		}
		if got := s.clientAddr(r); got.String() != c.want {
			t.Errorf("peer %s xff %q: %s, want %s", c.peer, c.xff, got, c.want)
		}
	}
}

// TestListenPlainOnlyOnLoopback: plain HTTP is refused off loopback;
// with a TLS config the listener speaks TLS.
func TestListenPlainOnlyOnLoopback(t *testing.T) {
	if ln, err := Listen("0.0.0.0:0", nil); err == nil {
		ln.Close()
		t.Error("plain HTTP on every address was allowed")
	}
	ln, err := Listen("127.0.0.1:0", nil)
	if err != nil {
		t.Fatal(err)
	}
	ln.Close()
	ln, err = Listen("127.0.0.1:0", &tls.Config{})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	if fmt.Sprintf("%T", ln) != "*tls.listener" {
		t.Errorf("listener %T", ln)
	}
}

// TestReadiness: /readyz is 503 naming the failing upstreams, and when
// the store cannot be read; /healthz only says the process is up.
func TestReadiness(t *testing.T) {
	ready := &fakeReady{ok: false, failing: []string{"upstream.imap"}}
	e := newEnv(t, func(_ *authstore.Options, c *Config) { c.Ready = ready })
	c := e.client()
	if r := c.do("GET", "/readyz", nil); r.code != 503 || string(r.body) != `{"ready":false,"store":true,"failing":["upstream.imap"]}`+"\n" {
		t.Errorf("failing upstream: %d %s", r.code, r.body)
	}
	ready.ok, ready.failing = true, nil
	c.must(200, "GET", "/readyz", nil)
	e.st.Close()
	if r := c.do("GET", "/readyz", nil); r.code != 503 || string(r.body) != `{"ready":false,"store":false,"failing":[]}`+"\n" {
		t.Errorf("closed store: %d %s", r.code, r.body)
	}
	c.must(200, "GET", "/healthz", nil)
}

// TestStoreFailureIs503: a store that cannot answer is 503 unavailable
// with Retry-After, never a 401 or a success.
func TestStoreFailureIs503(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	c := e.tokenClient(e.token("ops", authstore.RoleAdmin, ""))
	b := e.client()
	b.signIn("alice", "alice-password", "")
	e.st.Close()
	for _, cl := range []*client{c, b} {
		r := cl.do("GET", "/api/v1/users", nil)
		if r.code != 503 || r.errCode() != "unavailable" || r.header.Get("Retry-After") == "" {
			t.Errorf("closed store: %d %s", r.code, r.body)
		}
	}
	r := e.client().do("POST", "/api/v1/session", signInBody("alice", "alice-password"))
	if r.code != 503 {
		t.Errorf("sign-in on a closed store: %d %s", r.code, r.body)
	}
}

// TestErrorMapping: each store answer has its status and code; a
// throttled call is 429 with Retry-After.
func TestErrorMapping(t *testing.T) {
	cases := []struct {
		err    error
		status int
		code   string
	}{
		{authstore.ErrThrottled, 429, "throttled"},
		{fmt.Errorf("x: %w", authstore.ErrNotFound), 404, "not_found"},
		{fmt.Errorf("x: %w", authstore.ErrExists), 409, "conflict"},
		{fmt.Errorf("x: %w", authstore.ErrState), 409, "conflict"},
		{fmt.Errorf("x: %w", authstore.ErrInvalid), 422, "invalid"},
		{fmt.Errorf("x: %w", authstore.ErrUnavailable), 503, "unavailable"},
		{errors.New("disk on fire"), 503, "unavailable"},
	}
	for _, c := range cases {
		rec := httptest.NewRecorder()
		writeError(rec, c.err)
		if rec.Code != c.status || string(asAPIError(c.err).Code) != c.code {
			t.Errorf("%v: %d %s", c.err, rec.Code, rec.Body)
		}
		if (c.status == 429 || c.status == 503) && rec.Header().Get("Retry-After") == "" {
			t.Errorf("%v: no Retry-After", c.err)
		}
	}
}
