package main

import (
	"crypto/tls"
	"io"
	"net/http"
	"net/http/cookiejar"
	"regexp"
	"strings"
	"testing"
	"time"
)

var demoWebLine = regexp.MustCompile(`^\s+(sign in|demo|newcomer|admin)\s+(?:password )?([^\s;]+)`)

// TestDemoPrintsWebSignIn: the demo prints the sign-in page's address and
// the three accounts, and each password signs in where it says.
func TestDemoPrintsWebSignIn(t *testing.T) {
	d := runDemo(t)
	got := map[string]string{} // "sign in" → URL, user → password
	web := false
	for _, line := range d.lines {
		web = web || strings.HasPrefix(line, "Web pages")
		if m := demoWebLine.FindStringSubmatch(line); web && m != nil {
			got[m[1]] = m[2]
		}
	}
	if len(got) < 4 {
		t.Fatalf("demo printed %v for the web side:\n%s", got, strings.Join(d.lines, "\n"))
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Timeout: 10 * time.Second, Jar: jar, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}} // the demo's own self-signed certificate
	defer client.CloseIdleConnections()
	login := got["sign in"]
	resp, err := client.Get(login)
	if err != nil {
		t.Fatalf("GET %s: %v", login, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), "<h1>Sign in</h1>") {
		t.Fatalf("GET %s: %d\n%s", login, resp.StatusCode, body)
	}
	api := strings.TrimSuffix(login, "/login") + "/api/v1/session"
	for user, want := range map[string]string{"demo": "second_factor", "newcomer": "signed_in", "admin": "signed_in"} {
		resp, err := client.Post(api, "application/json", strings.NewReader(`{"username":"`+user+`","password":"`+got[user]+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if !strings.Contains(string(b), `"state":"`+want+`"`) {
			t.Errorf("%s signing in with the printed password: %d %s", user, resp.StatusCode, b)
		}
		if user == "newcomer" {
			checkSetUpActivity(t, client, strings.TrimSuffix(login, "/login")+"/account")
		}
	}
}

// checkSetUpActivity: the account page of a demo account says how it came
// to be in words, not with the name of the demo's audit actor.
func checkSetUpActivity(t *testing.T, client *http.Client, account string) {
	t.Helper()
	resp, err := client.Get(account)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(page), "The account was created during set-up") || strings.Contains(string(page), " by demo") ||
		strings.Contains(string(page), "setup:") {
		t.Errorf("the newcomer's account page does not say the account was created during set-up:\n%s", page)
	}
}
