package dav

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
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
)

const (
	easPath     = "/Microsoft-Server-ActiveSync"
	easUpstream = "/SOGo/Microsoft-Server-ActiveSync"
	easQuery    = "Cmd=FolderSync&User=alice&DeviceId=ApplDNQX1234&DeviceType=iPhone"
)

// folderSync is a FolderSync body in WBXML: it holds NUL bytes, which must
// pass as they are.
var folderSync = []byte{0x03, 0x01, 0x6a, 0x00, 0x00, 0x07, 0x56, 0x52, 0x03, 0x30, 0x00, 0x01, 0x01}

// upstreamSeen is what an upstream got.
type upstreamSeen struct {
	target string
	header http.Header
	body   []byte
}

// recorder is an upstream that reports each request and answers 200.
func recorder(got chan<- upstreamSeen) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		got <- upstreamSeen{r.RequestURI, r.Header.Clone(), b}
		w.Header().Set("Content-Type", "application/vnd.ms-sync.wbxml")
		w.Write(folderSync)
	})
}

// withActiveSync serves ActiveSync from upstream in front of SOGo's way of
// authenticating (the header, the master password as Basic).
func withActiveSync(t *testing.T, upstream http.Handler, mod func(*ActiveSyncConfig)) func(*Config) {
	up := httptest.NewServer(upstream)
	t.Cleanup(up.Close)
	u, _ := url.Parse(up.URL + easUpstream)
	return func(c *Config) {
		c.ActiveSync = ActiveSyncConfig{Upstream: u, Path: easPath, MasterPassword: "master-secret"}
		if mod != nil {
			mod(&c.ActiveSync)
		}
	}
}

// TestActiveSyncRequest: a command reaches the ActiveSync upstream at its
// endpoint with the query and the WBXML body untouched, authenticated for
// the activesync scope with the device as the client's name, and with the
// user named as SOGo trusts a proxy to: its header, and Basic with the
// master password and x-webobjects-auth-type. Whatever x-webobjects
// header the client sent, in any spelling, is gone (P11); the DAV upstream
// sees nothing.
func TestActiveSyncRequest(t *testing.T) {
	auth := &fakeAuth{user: "alice", secret: "s3cret", attempts: make(chan authstore.Attempt, 1)}
	got, davGot := make(chan upstreamSeen, 1), make(chan upstreamSeen, 1)
	env := newTestEnv(t, auth, recorder(davGot), withActiveSync(t, recorder(got), nil))
	req, _ := http.NewRequest("POST", env.url+easPath+"?"+easQuery, bytes.NewReader(folderSync))
	req.SetBasicAuth("alice", "s3cret")
	req.Header.Set("MS-ASProtocolVersion", "14.1")
	for _, k := range []string{"X-Webobjects-Remote-User", "x_webobjects_remote_user", "X-WEBOBJECTS-AUTH_TYPE", "X-Webobjects-Server-Url"} {
		req.Header[k] = []string{"bob"}
	}
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !bytes.Equal(body, folderSync) {
		t.Errorf("answer %d % x, want 200 and the upstream's WBXML", resp.StatusCode, body)
	}
	a := <-auth.attempts
	if a.Protocol != authstore.ActiveSync || a.Client != "iPhone ApplDNQX1234" {
		t.Errorf("authenticated for %s as client %q, want activesync and the device", a.Protocol, a.Client)
	}
	seen := <-got
	if seen.target != easUpstream+"?"+easQuery || !bytes.Equal(seen.body, folderSync) {
		t.Errorf("upstream got %s % x", seen.target, seen.body)
	}
	user, password, _ := (&http.Request{Header: seen.header}).BasicAuth()
	if user != "alice" || password != "master-secret" || seen.header.Get("MS-ASProtocolVersion") != "14.1" {
		t.Errorf("upstream Basic %q:%q, protocol version %q", user, password, seen.header.Get("MS-ASProtocolVersion"))
	}
	for k, v := range seen.header {
		want := map[string]string{"X-Webobjects-Remote-User": "alice", "X-Webobjects-Auth-Type": "Basic"}[k]
		if sameHeaderName(k, sogoHeaders) && (len(v) != 1 || v[0] != want) {
			t.Errorf("upstream got %s: %q, want %q alone", k, v, want)
		}
	}
	select {
	case s := <-davGot:
		t.Errorf("the DAV upstream got %s", s.target)
	default:
	}
}

// TestActiveSyncPathSpellings: the endpoint in any letter case, and paths
// below it, are ActiveSync (its scope, its upstream); a path that only
// begins like it is DAV.
func TestActiveSyncPathSpellings(t *testing.T) {
	auth := &fakeAuth{user: "alice", secret: "s3cret", attempts: make(chan authstore.Attempt, 1)}
	got, davGot := make(chan upstreamSeen, 1), make(chan upstreamSeen, 1)
	env := newTestEnv(t, auth, recorder(davGot), withActiveSync(t, recorder(got), nil))
	for path, want := range map[string]string{
		"/microsoft-server-activesync": easUpstream,
		"/MICROSOFT-SERVER-ACTIVESYNC": easUpstream,
		easPath + "/x":                 easUpstream + "/x",
		easPath + "x":                  "",
	} {
		env.call(t, "OPTIONS", path)
		a := <-auth.attempts
		select {
		case s := <-got:
			if want == "" || s.target != want || a.Protocol != authstore.ActiveSync {
				t.Errorf("%s: ActiveSync upstream got %s for %s, want %q", path, s.target, a.Protocol, want)
			}
		case s := <-davGot:
			if want != "" || a.Protocol != authstore.DAV {
				t.Errorf("%s: DAV upstream got %s for %s, want ActiveSync's %s", path, s.target, a.Protocol, want)
			}
		}
	}
}

// TestActiveSyncStoredAuth: in stored mode the ActiveSync upstream gets the
// user's stored password as Basic, and no trusted header.
func TestActiveSyncStoredAuth(t *testing.T) {
	got := make(chan upstreamSeen, 1)
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.NotFoundHandler(),
		func(c *Config) {
			withActiveSync(t, recorder(got), func(a *ActiveSyncConfig) { a.UpstreamAuth, a.MasterPassword = StoredAuth, "" })(c)
			c.UpstreamPassword = func(_ context.Context, user string) (string, error) { return "upstream-" + user, nil }
		})
	req, _ := http.NewRequest("POST", env.url+easPath+"?"+easQuery, bytes.NewReader(folderSync))
	req.SetBasicAuth("alice", "s3cret")
	req.Header.Set("X-Webobjects-Remote-User", "bob")
	resp, err := env.client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	seen := <-got
	user, password, _ := (&http.Request{Header: seen.header}).BasicAuth()
	if user != "alice" || password != "upstream-alice" || seen.header.Get("X-Webobjects-Remote-User") != "" {
		t.Errorf("upstream got Basic %q:%q and header %q", user, password, seen.header.Get("X-Webobjects-Remote-User"))
	}
}

// TestActiveSyncChallenge: a phone without credentials, or with wrong
// ones, is challenged and told it needs an app password.
func TestActiveSyncChallenge(t *testing.T) {
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.NotFoundHandler(), withActiveSync(t, http.NotFoundHandler(), nil))
	for _, secret := range []string{"", "wrong"} {
		req, _ := http.NewRequest("OPTIONS", env.url+easPath, nil)
		if secret != "" {
			req.SetBasicAuth("alice", secret)
		}
		resp, err := env.client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		want := "Authentication failed. Phones and mail apps that use Exchange ActiveSync need an app password: https://example.org/account\n"
		if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("WWW-Authenticate") == "" || string(body) != want {
			t.Errorf("secret %q: %d %q %q", secret, resp.StatusCode, resp.Header.Get("WWW-Authenticate"), body)
		}
	}
}

// TestP13_ActiveSyncWaitOutlivesDAVTimeout: a command whose answer comes
// after the DAV upstream's response timeout has passed many times over
// (a Ping, a Sync with Wait) is still answered on the ActiveSync route,
// whose timeout is its own, while the same wait on the DAV route is cut.
func TestP13_ActiveSyncWaitOutlivesDAVTimeout(t *testing.T) {
	const davTimeout = 20 * time.Millisecond
	slow := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(20 * davTimeout)
		w.WriteHeader(http.StatusOK)
	})
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, slow, func(c *Config) {
		withActiveSync(t, slow, nil)(c)
		c.ResponseTimeout = davTimeout
	})
	for path, want := range map[string]int{easPath + "?Cmd=Ping": http.StatusOK, "/dav/calendars/": http.StatusServiceUnavailable} {
		if code := env.call(t, "POST", path); code != want {
			t.Errorf("%s: %d, want %d", path, code, want)
		}
	}
}

// TestP13_ActiveSyncPingKicked: a Ping the upstream holds ends within a
// second once its app password's sessions are kicked.
func TestP13_ActiveSyncPingKicked(t *testing.T) {
	held := make(chan struct{}, 1)
	env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.NotFoundHandler(),
		withActiveSync(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.Copy(io.Discard, r.Body) // then the server notices the connection closing
			held <- struct{}{}
			<-r.Context().Done()
		}), nil))
	env.kickHeld(t, "POST "+easPath+"?Cmd=Ping", fmt.Sprintf("Content-Length: %d\r\n\r\n%s", len(folderSync), folderSync), held)
}

// TestActiveSyncClient: the device named by a command's query, in either
// form, neutralised; the User-Agent when there is none.
func TestActiveSyncClient(t *testing.T) {
	// MS-ASHTTP 2.2.1.1.1.1: version 141, Sync (0), locale 0x0409, a
	// 4-byte device id, no policy key, device type "WP8".
	b64 := base64.StdEncoding.EncodeToString([]byte{141, 0, 0x09, 0x04, 4, 0xde, 0xad, 0xbe, 0xef, 0, 3, 'W', 'P', '8'})
	for query, want := range map[string]string{
		easQuery: "iPhone ApplDNQX1234",
		"Cmd=Ping&DeviceId=A%E2%80%AEB%0Aforged&DeviceType=Phone%1B%5B2J": "Phone[2J ABforged",
		"Cmd=Ping&DeviceId=" + strings.Repeat("x", 100):                   strings.Repeat("x", maxDeviceField),
		b64:                        "WP8 deadbeef",
		b64[:8]:                    "Mail/1.0",
		"Cmd=Ping":                 "Mail/1.0",
		"Cmd=Ping&DeviceId=%FF%FE": "?",
		url.QueryEscape(b64):       "WP8 deadbeef",
	} {
		r := httptest.NewRequest("POST", easPath+"?"+query, nil)
		r.Header.Set("User-Agent", "Mail/1.0")
		if got := activeSyncClient(r); got != want {
			t.Errorf("%s: %q, want %q", query, got, want)
		}
	}
}

// closingUpstream answers each connection's first request and closes the
// connection when a second one comes, without having said it would (no
// "Connection: close"), as SOGo does. It returns its address.
func closingUpstream(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				br := bufio.NewReader(c)
				req, err := http.ReadRequest(br)
				if err != nil {
					return
				}
				io.Copy(io.Discard, req.Body)
				io.WriteString(c, "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
				http.ReadRequest(br) // a second request on this connection is lost
			}()
		}
	}()
	return ln.Addr().String()
}

// TestUpstreamClosingEveryConnection: with keep-alives off, no request is
// lost to an upstream that closes each connection after its answer
// without saying so (SOGo); with them on, the second request on a reused
// connection is.
func TestUpstreamClosingEveryConnection(t *testing.T) {
	for _, keepAlive := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep-alive %v", keepAlive), func(t *testing.T) {
			davURL, _ := url.Parse("http://" + closingUpstream(t) + "/")
			easURL, _ := url.Parse("http://" + closingUpstream(t) + easUpstream)
			env := newTestEnv(t, &fakeAuth{user: "alice", secret: "s3cret"}, http.NotFoundHandler(), func(c *Config) {
				c.Upstream, c.DisableKeepAlives = davURL, !keepAlive
				c.ActiveSync = ActiveSyncConfig{Upstream: easURL, Path: easPath, DisableKeepAlives: !keepAlive}
			})
			for _, path := range []string{"/dav/calendars/", easPath + "?Cmd=Sync"} {
				codes := []int{env.call(t, "POST", path), env.call(t, "POST", path)}
				if lost := codes[1] != http.StatusOK; lost != keepAlive || codes[0] != http.StatusOK {
					t.Errorf("%s: answers %v", path, codes)
				}
			}
		})
	}
}
