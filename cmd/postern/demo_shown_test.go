package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"github.com/postern-dev/postern/admin/api"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// demoRun is `postern demo` running in-process, with what it printed.
type demoRun struct {
	lines []string
	roots *x509.CertPool
}

// runDemo starts the demo, reads its output up to the last account line of
// the web side, and stops it when the test ends (it must exit 0).
func runDemo(t *testing.T) *demoRun {
	t.Helper()
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var code int
	wg.Go(func() {
		c := &cli{stdin: strings.NewReader(""), stdout: pw, stderr: io.Discard}
		code = c.run(ctx, []string{"demo"})
		pw.Close()
	})
	t.Cleanup(func() {
		cancel()
		go io.Copy(io.Discard, pr)
		wg.Wait()
		if code != 0 {
			t.Errorf("demo exited %d", code)
		}
	})
	d := &demoRun{}
	sc := bufio.NewScanner(pr)
	deadline := time.AfterFunc(30*time.Second, func() { pr.CloseWithError(io.ErrUnexpectedEOF) })
	defer deadline.Stop()
	for sc.Scan() {
		d.lines = append(d.lines, sc.Text())
		if lastDemoLine.MatchString(sc.Text()) {
			break
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("demo output: %v", err)
	}
	pem, err := os.ReadFile(d.field(t, "certificate"))
	if err != nil {
		t.Fatal(err)
	}
	d.roots = x509.NewCertPool()
	d.roots.AppendCertsFromPEM(pem)
	return d
}

// field is the first word after the label of a "  label   value" line.
func (d *demoRun) field(t *testing.T, label string) string {
	t.Helper()
	for _, l := range d.lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), label+"  "); ok {
			return strings.Fields(rest)[0]
		}
	}
	t.Fatalf("the demo printed no %q line:\n%s", label, strings.Join(d.lines, "\n"))
	return ""
}

// tls is a client configuration that checks the name in the printed URL,
// as fetchmail and Thunderbird do.
func (d *demoRun) tls(host string) *tls.Config {
	return &tls.Config{RootCAs: d.roots, ServerName: host, MinVersion: tls.VersionTLS12}
}

var (
	demoURL      = regexp.MustCompile(`(?:imaps?|pop3s?|smtps?|https)://[^\s/']+`)
	lastDemoLine = regexp.MustCompile(`^\s+` + demoAdmin + `\s+password `)
)

// TestDemoPrintsLocalhost: every address the demo prints names localhost,
// which its certificate covers, so clients that check DNS names only
// accept it; the sign-in page is the account URL of failure hints.
func TestDemoPrintsLocalhost(t *testing.T) {
	d := runDemo(t)
	out := strings.Join(d.lines, "\n")
	urls := demoURL.FindAllString(out, -1)
	if len(urls) < 8 {
		t.Fatalf("only %d URLs printed:\n%s", len(urls), out)
	}
	for _, u := range urls {
		if p, err := url.Parse(u); err != nil || p.Hostname() != "localhost" {
			t.Errorf("printed %s, want localhost", u)
		}
	}
	imaps, err := url.Parse(d.field(t, "IMAP, implicit TLS"))
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", imaps.Host, d.tls(imaps.Hostname()))
	if err != nil {
		t.Fatalf("TLS to %s checking the name %s: %v", imaps.Host, imaps.Hostname(), err)
	}
	defer conn.Close()
	r := bufio.NewReader(conn)
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	r.ReadString('\n')
	fmt.Fprintf(conn, "a LOGIN %s wrong-password\r\n", demoUser)
	answer, _ := r.ReadString('\n')
	if signIn := d.field(t, "sign in"); !strings.Contains(answer, "Mail apps need an app password: "+signIn) {
		t.Errorf("failed login answered %q, want the hint to carry %s", answer, signIn)
	}
}

// TestDemoBackupCodesSignIn: the demo prints the demo user's backup codes
// with its other credentials, and one of them finishes a web sign-in.
func TestDemoBackupCodesSignIn(t *testing.T) {
	d := runDemo(t)
	var codes []string
	for _, l := range d.lines {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "backup codes"); ok {
			codes = regexp.MustCompile(`\d{4} \d{4} \d{4}`).FindAllString(rest, -1)
		}
	}
	if len(codes) != 5 {
		t.Fatalf("printed backup codes %v, want 5:\n%s", codes, strings.Join(d.lines, "\n"))
	}
	signIn, err := url.Parse(d.field(t, "sign in"))
	if err != nil {
		t.Fatal(err)
	}
	jar, _ := cookiejar.New(nil)
	client := &http.Client{Jar: jar, Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: d.tls(signIn.Hostname())}}
	defer client.CloseIdleConnections()
	sessionURL := "https://" + signIn.Host + "/api/v1/session"
	password := d.field(t, "account password")
	csrf := ""
	for _, step := range []struct{ path, body, want string }{
		{"", `{"username":"` + demoUser + `","password":"` + password + `"}`, "second_factor"},
		{"/second-factor", `{"code":"` + codes[2] + `"}`, "signed_in"},
	} {
		req, _ := http.NewRequest("POST", sessionURL+step.path, strings.NewReader(step.body))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Origin", "https://"+signIn.Host)
		req.Header.Set(api.CSRFHeader, csrf)
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var st struct {
			State string `json:"state"`
			CSRF  string `json:"csrf_token"`
		}
		json.NewDecoder(resp.Body).Decode(&st)
		resp.Body.Close()
		csrf = st.CSRF
		if st.State != step.want {
			t.Fatalf("POST %s: %d, state %q, want %q", sessionURL+step.path, resp.StatusCode, st.State, step.want)
		}
	}
}

// TestDemoOneMailbox: what an IMAP client puts into the demo INBOX, a POP3
// client then reads: both protocols show one mailbox.
func TestDemoOneMailbox(t *testing.T) {
	d := runDemo(t)
	app := strings.ReplaceAll(strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(d.lineOf(t, "app password")), "app password")), " ", "")
	imaps, _ := url.Parse(d.field(t, "IMAP, implicit TLS"))
	c, err := imapclient.DialTLS(imaps.Host, &imapclient.Options{TLSConfig: d.tls(imaps.Hostname())})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login(demoUser, app).Wait(); err != nil {
		t.Fatalf("IMAP login: %v", err)
	}
	const subject = "Put in over IMAP"
	if err := appendMessage(c, "INBOX", message(subject, "read over POP3")); err != nil {
		t.Fatalf("APPEND: %v", err)
	}

	pop3s, _ := url.Parse(d.field(t, "POP3, implicit TLS"))
	conn, err := tls.Dial("tcp", pop3s.Host, d.tls(pop3s.Hostname()))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	w := &wire{t: t, conn: conn, r: bufio.NewReader(conn)}
	w.expect("+OK")
	if got := w.pop3Login(demoUser, app); !strings.HasPrefix(got, "+OK") {
		t.Fatalf("POP3 login: %q", got)
	}
	w.send("STAT")
	if got := w.expect("+OK "); !strings.HasPrefix(got, "+OK 4 ") {
		t.Errorf("POP3 STAT %q, want the 3 first messages and the one just put in over IMAP", got)
	}
	w.send("RETR 4")
	w.expect("+OK")
	if body := string(w.dotBody()); !strings.Contains(body, "Subject: "+subject) {
		t.Errorf("POP3 message 4:\n%s", body)
	}
}

// lineOf is the first printed line with label.
func (d *demoRun) lineOf(t *testing.T, label string) string {
	t.Helper()
	for _, l := range d.lines {
		if strings.HasPrefix(strings.TrimSpace(l), label+"  ") {
			return l
		}
	}
	t.Fatalf("no %q line", label)
	return ""
}

// appendMessage puts msg into mailbox, as a mail app files a message.
func appendMessage(c *imapclient.Client, mailbox string, msg []byte) error {
	app := c.Append(mailbox, int64(len(msg)), nil)
	if _, err := app.Write(msg); err != nil {
		return err
	}
	if err := app.Close(); err != nil {
		return err
	}
	_, err := app.Wait()
	return err
}
