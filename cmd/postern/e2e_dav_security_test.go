package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// rawAnswer sends raw request bytes over TLS and returns the answer's status
// line and headers plus its body, with the Date header dropped, so two
// answers can be compared byte for byte.
func (e *davE2E) rawAnswer(t *testing.T, src, request string) string {
	t.Helper()
	c, err := tls.DialWithDialer(dialer(src), "tcp", e.g.addrs["dav"], e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(e2eIO))
	if _, err := io.WriteString(c, request); err != nil {
		t.Fatal(err)
	}
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	resp.Header.Del("Date")
	b, err := httputil.DumpResponse(resp, true)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func basicRequest(method, path, user, secret string, extra ...string) string {
	req := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nDepth: 0\r\nContent-Length: 0\r\n", method, path)
	if user != "" {
		r, _ := http.NewRequest(method, "/", nil)
		r.SetBasicAuth(user, secret)
		req += "Authorization: " + r.Header.Get("Authorization") + "\r\n"
	}
	for _, h := range extra {
		req += h + "\r\n"
	}
	return req + "Connection: close\r\n\r\n"
}

// TestDAV_A9_IdenticalFailureAnswers: every credential problem gets the
// same bytes (A9 for DAV): status, headers and the hint.
func TestDAV_A9_IdenticalFailureAnswers(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{limits: []string{"user_source_failure_budget = 2"}})
	alicePw := e.user(t, "alice", true)
	_, aliceApp := e.appPassword(t, "alice")
	e.user(t, "bob", false)
	_, bobApp := e.appPassword(t, "bob")
	revokedID, revoked := e.appPassword(t, "bob")
	if err := e.g.store.RevokeAppPassword(e2eCtx(), "bob", revokedID); err != nil {
		t.Fatal(err)
	}
	e.user(t, "carol", false)
	_, carolApp := e.appPassword(t, "carol")
	if err := e.g.store.SetDisabled(e2eCtx(), "carol", true); err != nil {
		t.Fatal(err)
	}
	davePw := e.user(t, "dave", false)
	// dave is throttled from 127.0.0.5: two failures fill his budget there,
	// so even his right account password is refused from it (a right app
	// password is let in whatever the budgets say: A1).
	// (A repeat of one wrong secret is not charged again.)
	for i := range 2 {
		e.rawAnswer(t, "127.0.0.5", basicRequest("PROPFIND", "/dave/", "dave", fmt.Sprintf("wrong-password-%d", i)))
	}
	if got := e.rawAnswer(t, "", basicRequest("PROPFIND", "/bob/", "bob", bobApp)); !strings.HasPrefix(got, "HTTP/1.1 207") {
		t.Fatalf("control request: %q", got)
	}
	if got := e.rawAnswer(t, "", basicRequest("PROPFIND", "/alice/", "alice", aliceApp)); !strings.HasPrefix(got, "HTTP/1.1 207") {
		t.Fatalf("alice's app password: %q", got)
	}
	want := e.rawAnswer(t, "", basicRequest("PROPFIND", "/bob/", "mallory", bobApp))
	if !strings.HasPrefix(want, "HTTP/1.1 401") {
		t.Fatalf("unknown user: %q", want)
	}
	tests := []struct{ name, src, user, secret string }{
		{"wrong password", "", "bob", "Wrong-password"},
		{"another user's app password", "", "alice", bobApp},
		{"disabled user", "", "carol", carolApp},
		{"revoked app password", "", "bob", revoked},
		{"account password of a two-step user", "", "alice", alicePw},
		{"throttled", "127.0.0.5", "dave", davePw},
	}
	for _, tt := range tests {
		path := "/" + tt.user + "/"
		if got := e.rawAnswer(t, tt.src, basicRequest("PROPFIND", path, tt.user, tt.secret)); got != want {
			t.Errorf("%s:\n%q\nwant the unknown user's\n%q", tt.name, got, want)
		}
	}
}

// TestDAV_P8_StrictBasicAndClientAddress: two Authorization headers are
// refused, and X-Forwarded-For from an untrusted peer moves nothing: the
// source stays the socket's, so its failures keep counting against it.
func TestDAV_P8_StrictBasicAndClientAddress(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{limits: []string{"user_source_failure_budget = 3"}})
	pw := e.user(t, "alice", false)
	_, app := e.appPassword(t, "alice")

	r, _ := http.NewRequest("GET", "/", nil)
	r.SetBasicAuth("alice", app)
	good := "Authorization: " + r.Header.Get("Authorization")
	if got := e.rawAnswer(t, "", basicRequest("PROPFIND", "/alice/", "", "", good, good)); !strings.HasPrefix(got, "HTTP/1.1 400") {
		t.Errorf("two Authorization headers: %q", got)
	}
	for _, bad := range []string{
		"Authorization: Basic " + "YWxpY2U6" + "\x01",
		"Authorization: Basic  YWxpY2U6cGFzcw==",
		"Authorization: Basic YWxpY2U6cGFzcw", // no padding
		"Authorization: Bearer YWxpY2U6cGFzcw==",
	} {
		if got := e.rawAnswer(t, "", basicRequest("PROPFIND", "/alice/", "", "", bad)); !strings.HasPrefix(got, "HTTP/1.1 401") && !strings.HasPrefix(got, "HTTP/1.1 400") {
			t.Errorf("%q: %q", bad, got)
		}
	}
	// Three failures from 127.0.0.2, each claiming another client.
	for i := range 3 {
		xff := fmt.Sprintf("X-Forwarded-For: 198.51.100.%d", i+1)
		wrong := fmt.Sprintf("wrong-%d", i) // a repeated wrong secret is not charged again
		if got := e.rawAnswer(t, "127.0.0.2", basicRequest("PROPFIND", "/alice/", "alice", wrong, xff)); !strings.HasPrefix(got, "HTTP/1.1 401") {
			t.Fatalf("wrong password: %q", got)
		}
	}
	// Had the header counted, this would be a fresh source and pass. (The
	// account password: a right app password is let in whatever the
	// budgets say, A1.)
	xff := "X-Forwarded-For: 198.51.100.99"
	if got := e.rawAnswer(t, "127.0.0.2", basicRequest("PROPFIND", "/alice/", "alice", pw, xff)); !strings.HasPrefix(got, "HTTP/1.1 401") {
		t.Errorf("right password from the throttled socket with a new X-Forwarded-For: %q, want 401", got)
	}
	if got := e.rawAnswer(t, "127.0.0.3", basicRequest("PROPFIND", "/alice/", "alice", pw)); !strings.HasPrefix(got, "HTTP/1.1 207") {
		t.Errorf("right password from another socket: %q, want 207", got)
	}
	if got := e.rawAnswer(t, "127.0.0.2", basicRequest("PROPFIND", "/alice/", "alice", app, xff)); !strings.HasPrefix(got, "HTTP/1.1 207") {
		t.Errorf("app password from the throttled socket: %q, want 207", got)
	}
	e.g.store.FlushAudit()
	events, err := e.g.store.AuditTail(e2eCtx(), 20)
	if err != nil {
		t.Fatal(err)
	}
	logins := 0
	for _, ev := range events {
		if ev.Kind != "login" {
			continue
		}
		logins++
		if strings.HasPrefix(ev.Source, "198.51.100.") {
			t.Errorf("audit records the forwarded address %s from an untrusted peer", ev.Source)
		}
	}
	if logins < 5 {
		t.Errorf("audit holds %d logins, want at least 5", logins)
	}
}

// TestDAV_P9_WellKnownIgnoresHost: the discovery redirect goes to the
// configured path whatever Host says.
func TestDAV_P9_WellKnownIgnoresHost(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{dav: []string{}})
	for _, wk := range []string{"/.well-known/caldav", "/.well-known/carddav"} {
		for _, host := range []string{"127.0.0.1", "evil.example", "evil.example:8443"} {
			code, h, _ := e.do(t, "PROPFIND", wk, "", "", map[string]string{"Host": host}, "")
			if code != http.StatusMovedPermanently || h.Get("Location") != "/" {
				t.Errorf("%s with Host %s: %d Location %q, want 301 to /", wk, host, code, h.Get("Location"))
			}
		}
	}
}

// slowPut starts a PUT whose body never completes and returns the
// connection once postern passed it to the upstream.
func (e *davE2E) slowPut(t *testing.T, user, secret, path string) *tls.Conn {
	t.Helper()
	c, err := tls.Dial("tcp", e.g.addrs["dav"], e.tlsConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	r, _ := http.NewRequest("PUT", "/", nil)
	r.SetBasicAuth(user, secret)
	fmt.Fprintf(c, "PUT %s HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: %s\r\nContent-Type: text/calendar\r\nContent-Length: 1000000\r\n\r\nBEGIN:VCALENDAR\r\n",
		path, r.Header.Get("Authorization"))
	deadline := time.Now().Add(e2eWait)
	for !e.liveRequest(user) {
		if time.Now().After(deadline) {
			t.Fatal("the slow PUT never became a live request")
		}
		time.Sleep(5 * time.Millisecond)
	}
	return c
}

func (e *davE2E) liveRequest(user string) bool {
	for _, s := range e.g.registry.List() {
		if s.Username == user {
			return true
		}
	}
	return false
}

// closedWithin reads c until it closes and returns how long that took.
func closedWithin(t *testing.T, c net.Conn, start time.Time) time.Duration {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(e2eIO))
	b, err := io.ReadAll(c)
	if err != nil && !isClosedErr(err) {
		t.Fatalf("reading until close: %v (%q)", err, b)
	}
	return time.Since(start)
}

func isClosedErr(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "reset") || strings.Contains(err.Error(), "closed")
}

// liveRequestEnds holds a slow PUT open with doomed, makes change, and
// wants the request gone within a second (P10, A8), the next
// request with doomed refused, and one with spared ("" for none) let in.
func (e *davE2E) liveRequestEnds(t *testing.T, user, doomed, spared string, change func() error) {
	t.Helper()
	e.mkcol(t, user, doomed)
	c := e.slowPut(t, user, doomed, "/"+user+"/"+calPrefix+"/slow.ics")
	start := time.Now()
	if err := change(); err != nil {
		t.Fatal(err)
	}
	if d := closedWithin(t, c, start); d > kickLimit {
		t.Errorf("live request ended after %v, want within %v", d, kickLimit)
	}
	depth := map[string]string{"Depth": "0"}
	if code, _, _ := e.do(t, "PROPFIND", "/"+user+"/", user, doomed, depth, ""); code != http.StatusUnauthorized {
		t.Errorf("next request: %d, want 401", code)
	}
	if spared == "" {
		return
	}
	if code, _, _ := e.do(t, "PROPFIND", "/"+user+"/", user, spared, depth, ""); code != http.StatusMultiStatus {
		t.Errorf("the credential the change spares: %d, want 207", code)
	}
}

// TestDAV_P10_RevocationIsImmediate: revoking an app password, changing the
// password or disabling the user ends the live DAV requests it concerns
// within a second and refuses the next one.
func TestDAV_P10_RevocationIsImmediate(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{})
	ctx := e2eCtx()
	t.Run("revoke", func(t *testing.T) {
		e.user(t, "alice", false)
		id, app := e.appPassword(t, "alice")
		_, other := e.appPassword(t, "alice")
		e.liveRequestEnds(t, "alice", app, other, func() error { return e.g.store.RevokeAppPassword(ctx, "alice", id) })
	})
	t.Run("password change", func(t *testing.T) {
		pw := e.user(t, "carol", false)
		_, app := e.appPassword(t, "carol")
		e.secrets = append(e.secrets, w6Secret{"new account password of carol", "carol", "a new good password", ""})
		e.liveRequestEnds(t, "carol", pw, app, func() error { return e.g.store.SetPassword(ctx, "carol", "a new good password", false) })
	})
	t.Run("disable", func(t *testing.T) {
		e.user(t, "dave", false)
		_, app := e.appPassword(t, "dave")
		e.liveRequestEnds(t, "dave", app, "", func() error { return e.g.store.SetDisabled(ctx, "dave", true) })
	})
}

// TestDAV_A8_EnforcementEndsPasswordAccess: turning on organisation-wide
// two-step verification refuses account passwords over DAV at once and
// ends their live requests within a second; app passwords go on.
func TestDAV_A8_EnforcementEndsPasswordAccess(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{})
	pw := e.user(t, "bob", false)
	_, app := e.appPassword(t, "bob")
	e.liveRequestEnds(t, "bob", pw, app, func() error {
		return e.g.store.SetPolicy(e2eCtx(), authstore.Policy{MFARequired: true})
	})
}

// TestDAV_P6_UpstreamDownIsUnavailable: with the upstream down the answer
// is 503 with Retry-After, and the failure budget is untouched.
func TestDAV_P6_UpstreamDownIsUnavailable(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{switched: true, limits: []string{"user_failure_budget = 1", "user_source_failure_budget = 1"}})
	// The account password goes through the budgets (a right app password
	// would pass them anyway); a budget of one would show a single charge.
	pw := e.user(t, "bob", false)
	e.sw.off()
	for range 3 {
		code, h, _ := e.do(t, "PROPFIND", "/bob/", "bob", pw, map[string]string{"Depth": "0"}, "")
		if code != http.StatusServiceUnavailable || !regexp.MustCompile(`^[0-9]+$`).MatchString(h.Get("Retry-After")) {
			t.Errorf("upstream down: %d Retry-After %q, want 503 with a delay", code, h.Get("Retry-After"))
		}
	}
	e.sw.on()
	if code, _, _ := e.do(t, "PROPFIND", "/bob/", "bob", pw, map[string]string{"Depth": "0"}, ""); code != http.StatusMultiStatus {
		t.Errorf("upstream back: %d, want 207 (a 503 must not charge the budget)", code)
	}
}
