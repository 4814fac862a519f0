package dav

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
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

type testEnv struct {
	h      *Handler
	srv    *httptest.Server
	reg    *proxy.Registry
	upReqs chan *http.Request
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
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &testEnv{h: h, srv: srv, reg: reg}
}

func TestKickCancelsLiveRequest(t *testing.T) {
	auth := &fakeAuth{user: "alice", secret: "s3cret"}
	upstreamGot := make(chan struct{}, 1)
	env := newTestEnv(t, auth, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		upstreamGot <- struct{}{}
		io.Copy(io.Discard, r.Body)
	}), nil)
	c, err := net.Dial("tcp", env.srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r, _ := http.NewRequest("PUT", "/", nil)
	r.SetBasicAuth("alice", "s3cret")
	fmt.Fprintf(c, "PUT /dav/calendars/x.ics HTTP/1.1\r\nHost: x\r\nAuthorization: %s\r\nContent-Length: 100000\r\n\r\nBEGIN:", r.Header.Get("Authorization"))
	select {
	case <-upstreamGot:
	case <-time.After(10 * time.Second):
		t.Fatal("request never reached the upstream")
	}
	if n := env.reg.Kick(proxy.Filter{AppPassID: "ap1"}, "revoked"); n != 1 {
		t.Fatalf("kick ended %d requests, want 1", n)
	}
	start := time.Now()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	b, err := io.ReadAll(c)
	if d := time.Since(start); d > time.Second || err != nil {
		t.Errorf("connection closed after %v (err %v, read %q), want within 1s", d, err, b)
	}
	_ = strings.NewReader
}
