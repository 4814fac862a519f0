package admin

import (
	"context"
	"crypto/tls"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/certs"
)

// TestHTTPSWithACookieJar serves the admin side over real TLS with the
// certs manager and signs in with net/http's cookie jar, which honours
// Secure and __Host- like a browser: the session works over HTTPS and the
// CSRF token is needed for a change.
func TestHTTPSWithACookieJar(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	pair, err := certs.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m, err := certs.New(certs.Options{Pairs: []certs.Pair{pair}})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := Listen("127.0.0.1:0", m.TLSConfig())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Serve(ctx, ln) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	roots, err := certs.CertPool(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 5 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots, ServerName: "localhost"}}}
	base := "https://" + ln.Addr().String()
	post := func(path, body, csrf string) *http.Response {
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		if csrf != "" {
			req.Header.Set(csrfHeader, csrf)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	res := post("/api/v1/session", `{"username":"alice","password":"alice-password"}`, "")
	var st api.SignInResponse
	decodeBody(t, res, &st)
	if res.StatusCode != 200 || st.State != stateSignedIn || res.Header.Get("Strict-Transport-Security") == "" {
		t.Fatalf("sign-in: %d %+v", res.StatusCode, st)
	}
	me, err := hc.Get(base + "/api/v1/me")
	if err != nil {
		t.Fatal(err)
	}
	me.Body.Close()
	if me.StatusCode != 200 {
		t.Fatalf("GET /me with the jar's cookie: %d", me.StatusCode)
	}
	if res := post("/api/v1/me/app-passwords", `{"name":"phone"}`, ""); res.StatusCode != 403 {
		t.Errorf("without CSRF token: %d", res.StatusCode)
	}
	if res := post("/api/v1/me/app-passwords", `{"name":"phone"}`, st.CSRFToken); res.StatusCode != 200 {
		t.Errorf("with CSRF token: %d", res.StatusCode)
	}
}
