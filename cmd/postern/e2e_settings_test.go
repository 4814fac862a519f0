package main

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"testing"
)

// TestDAVSettingsNameTheBoundPort: with dav.listen on port 0, the page
// that shows a new app password gives the CalDAV and CardDAV addresses at
// the port the listener got, as it does for IMAP and POP3.
func TestDAVSettingsNameTheBoundPort(t *testing.T) {
	t.Parallel()
	// The settings page needs no upstream: nothing answers on port 1.
	e := startDAVE2E(t, davOptions{upstream: "http://127.0.0.1:1/"})
	pw := e.user(t, "dora", false)
	page := e.newAppPasswordPage(t, "dora", pw)
	_, port, err := net.SplitHostPort(e.g.addrs["dav"])
	if err != nil || port == "0" {
		t.Fatalf("bound DAV address %q", e.g.addrs["dav"])
	}
	for _, service := range []string{"CalDAV", "CardDAV"} {
		want := "<dt>" + service + "</dt><dd>https://mail.example.org:" + port + "/</dd>"
		if !strings.Contains(page, want) {
			t.Errorf("the new app password's page lacks %q:\n%s", want, page)
		}
	}
	if strings.Contains(page, ":0/") {
		t.Errorf("the page shows port 0:\n%s", page)
	}
}

// webSession is a browser-like client signed in on the admin listener.
type webSession struct {
	t    *testing.T
	hc   *http.Client
	base string
	csrf string
}

// signIn signs user in on the admin listener with the account password.
func (e *davE2E) signIn(t *testing.T, user, password string) *webSession {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	w := &webSession{t: t, hc: &http.Client{Timeout: e2eIO, Jar: jar, Transport: &http.Transport{TLSClientConfig: e.tlsConfig()}},
		base: "https://" + e.g.addrs["admin"]}
	in, _ := json.Marshal(map[string]string{"username": user, "password": password})
	code, body := w.do(http.MethodPost, "/api/v1/session", "application/json", string(in))
	var session struct {
		State     string `json:"state"`
		CSRFToken string `json:"csrf_token"`
	}
	if err := json.Unmarshal([]byte(body), &session); code != http.StatusOK || err != nil || session.State != "signed_in" {
		t.Fatalf("sign-in: %d %s", code, body)
	}
	w.csrf = session.CSRFToken
	return w
}

// do sends one request as the browser's own page would.
func (w *webSession) do(method, path, contentType, body string) (int, string) {
	w.t.Helper()
	req, err := http.NewRequest(method, w.base+path, strings.NewReader(body))
	if err != nil {
		w.t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err := w.hc.Do(req)
	if err != nil {
		w.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// newAppPasswordPage signs user in on the admin listener and creates an
// app password with the account page's form, returning the page shown.
func (e *davE2E) newAppPasswordPage(t *testing.T, user, password string) string {
	t.Helper()
	w := e.signIn(t, user, password)
	form := url.Values{"name": {"Phone"}, "csrf_token": {w.csrf}}
	code, page := w.do(http.MethodPost, "/account/app-passwords", "application/x-www-form-urlencoded", form.Encode())
	if code != http.StatusOK {
		t.Fatalf("create app password on the page: %d\n%s", code, page)
	}
	return page
}
