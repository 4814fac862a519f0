package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// radicaleInfo makes Radicale log every request and login: what the
// upstream received, as it understood it.
var radicaleInfo = davOptions{radicale: testpeer.RadicaleOptions{LogLevel: "info"}}

// rawRequest is one HTTP/1.1 request as bytes: target exactly as given,
// Basic credentials when user is set, the extra header lines, a body.
func rawRequest(method, target, user, secret, body string, extra ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: %d\r\n", method, target, len(body))
	if user != "" {
		r, _ := http.NewRequest(method, "/", nil)
		r.SetBasicAuth(user, secret)
		b.WriteString("Authorization: " + r.Header.Get("Authorization") + "\r\n")
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("Connection: close\r\n\r\n" + body)
	return b.String()
}

// curl runs curl against the gateway's DAV listener and returns the status
// code and HTTP version curl reports, and what it printed on error.
func (e *davE2E) curl(t *testing.T, args ...string) (code int, version, stderr string) {
	t.Helper()
	bin := testpeer.RequirePeer(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), e2eIO)
	defer cancel()
	var errOut bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, append([]string{"-sS", "--cacert", e.certFile, "-o", "/dev/null",
		"-w", "%{http_code} %{http_version}"}, args...)...)
	cmd.Stderr = &errOut
	out, err := cmd.Output()
	if err != nil {
		return 0, "", fmt.Sprintf("%v: %s", err, errOut.String())
	}
	c, v, _ := strings.Cut(string(out), " ")
	code, _ = strconv.Atoi(c)
	return code, v, ""
}

// upstreamLog is Radicale's log so far.
func (e *davE2E) upstreamLog(t *testing.T) string {
	t.Helper()
	b, err := os.ReadFile(e.peer.LogFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// lastAuditSeq is the sequence number of the newest audit event.
func (e *davE2E) lastAuditSeq(t *testing.T) uint64 {
	t.Helper()
	e.g.store.FlushAudit()
	evs, err := e.g.store.AuditTail(e2eCtx(), 1)
	if err != nil || len(evs) != 1 {
		t.Fatalf("audit tail: %v %v", evs, err)
	}
	return evs[0].Seq
}

func cardText(uid string) string {
	return "BEGIN:VCARD\r\nVERSION:3.0\r\nUID:" + uid + "\r\nFN:Carol Card\r\nN:Card;Carol;;;\r\nEND:VCARD\r\n"
}

func eventText(uid string) string {
	return "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//postern//test//EN\r\nBEGIN:VEVENT\r\nUID:" + uid +
		"\r\nDTSTAMP:20250101T000000Z\r\nDTSTART:20250102T100000Z\r\nDTEND:20250102T110000Z\r\nSUMMARY:Meeting\r\nEND:VEVENT\r\nEND:VCALENDAR\r\n"
}

// pathSpellings spell the contacts collection of alice through her
// calendar, or otherwise not in canonical form. Radicale resolves most of
// them to /alice/contacts/; the rest other servers do.
var pathSpellings = []string{
	"/alice/calendar/../contacts/",
	"/alice/calendar/./../contacts/",
	"/alice/calendar/%2e%2e/contacts/",
	"/alice/calendar/%2E%2e/contacts/",
	"/alice/calendar/.%2E/contacts/",
	"/alice/calendar%2f..%2fcontacts/",
	"/alice/calendar%2F%2e%2e%2Fcontacts/",
	"/alice/calendar//../contacts/",
	"/alice//contacts/",
	"//alice/contacts/",
	`/alice/calendar/..\contacts/`,
	"/alice/calendar/..%5ccontacts/",
	"/alice/calendar/..%5Ccontacts/",
	"/alice/calendar/%252e%252e/contacts/",
	"/alice/calendar/..;/contacts/",
	"/alice/calendar/%c0%ae%c0%ae/contacts/",
	"/alice/calendar/%00/../contacts/",
}

// TestP8_DAVPathSpellings: an app password limited to CalDAV reaches no
// contacts however the path is spelled. Every path not in canonical form
// is refused with 400 before authentication, over HTTP/1.1 and HTTP/2, and
// nothing reaches the upstream; the canonical contacts path is refused as
// before and the calendar works.
func TestP8_DAVPathSpellings(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, radicaleInfo)
	e.user(t, "alice", false)
	_, full := e.appPassword(t, "alice")
	_, calOnly := e.appPassword(t, "alice", authstore.CalDAV)
	e.mkcol(t, "alice", full)
	ct := map[string]string{"Content-Type": "text/vcard"}
	if code, _, body := e.do(t, "PUT", "/alice/contacts/c1.vcf", "alice", full, ct, cardText("c1")); code != http.StatusCreated {
		t.Fatalf("PUT the card: %d %s", code, body)
	}
	if code, _, _ := e.do(t, "GET", "/alice/contacts/c1.vcf", "alice", calOnly, nil, ""); code != http.StatusUnauthorized {
		t.Errorf("calendar-only password on the canonical contacts path: %d, want 401", code)
	}
	ics := map[string]string{"Content-Type": "text/calendar"}
	if code, _, body := e.do(t, "PUT", "/alice/calendar/e1.ics", "alice", calOnly, ics, eventText("e1")); code != http.StatusCreated {
		t.Errorf("calendar-only password on the calendar: %d %s, want 201", code, body)
	}

	// OPTIONS * stays net/http's to answer, over both versions.
	for _, v := range []string{"--http1.1", "--http2"} {
		if code, _, stderr := e.curl(t, v, "-X", "OPTIONS", "--request-target", "*", e.base+"/"); code != http.StatusOK {
			t.Errorf("curl %s OPTIONS *: %d %s, want 200", v, code, stderr)
		}
	}

	seq, logged := e.lastAuditSeq(t), len(e.upstreamLog(t))
	targets := append([]string{"https://127.0.0.1/alice/calendar/../contacts/", "*"}, pathSpellings...)
	for _, p := range targets {
		for _, m := range []struct{ method, name, body string }{{"GET", "c1.vcf", ""}, {"PUT", "c2.vcf", cardText("c2")}} {
			target := p + m.name
			if p == "*" {
				target = p
			}
			got := e.rawAnswer(t, "", rawRequest(m.method, target, "alice", calOnly, m.body, "Content-Type: text/vcard"))
			if !strings.HasPrefix(got, "HTTP/1.1 400 ") || !strings.Contains(got, "canonical form") || strings.Contains(got, "Carol") {
				t.Errorf("%s %s: %q, want 400 saying the path is not in canonical form", m.method, target, got)
			}
			if strings.HasPrefix(target, "/") {
				e.curlRefused(t, m.method, target, calOnly, m.body)
			}
		}
	}
	if s := e.lastAuditSeq(t); s != seq {
		t.Errorf("the refused requests left audit events (sequence %d to %d): they were authenticated", seq, s)
	}
	// A last canonical request shows Radicale logs what reaches it.
	if code, _, _ := e.do(t, "GET", "/alice/calendar/e1.ics", "alice", calOnly, nil, ""); code != http.StatusOK {
		t.Errorf("calendar event after the attack: %d, want 200", code)
	}
	reached := regexp.MustCompile(`(?m)^.* request for .*$`).FindAllString(e.upstreamLog(t)[logged:], -1)
	if len(reached) != 1 || !strings.Contains(reached[0], "GET request for '/alice/calendar/e1.ics'") {
		t.Errorf("the upstream received, after the refused requests:\n%s\nwant only the last GET", strings.Join(reached, "\n"))
	}
	if code, _, _ := e.do(t, "GET", "/alice/contacts/c2.vcf", "alice", full, nil, ""); code != http.StatusNotFound {
		t.Errorf("the card the refused PUTs carried: %d, want 404 (never created)", code)
	}
}

// curlRefused sends method to target with curl, over HTTP/1.1 and HTTP/2,
// the path as it is, and wants 400.
func (e *davE2E) curlRefused(t *testing.T, method, target, secret, body string) {
	t.Helper()
	for _, v := range []string{"--http1.1", "--http2"} {
		args := []string{v, "--path-as-is", "-X", method, "-u", "alice:" + secret, e.base + target}
		if body != "" {
			args = append(args, "-H", "Content-Type: text/vcard", "--data-binary", body)
		}
		if code, _, stderr := e.curl(t, args...); code != http.StatusBadRequest {
			t.Errorf("curl %s %s %s: %d %s, want 400", v, method, target, code, stderr)
		}
	}
}

// userHeaderSpellings are the client's copies of X-Remote-User that a
// gateway interface (CGI, WSGI: HTTP_X_REMOTE_USER) reads as that header.
var userHeaderSpellings = [][]string{
	{"X_Remote_User: bob"},
	{"x_remote_user: bob"},
	{"X-Remote_User: bob"},
	{"X_REMOTE-USER: bob"},
	{"x-remote-user: bob", "x-remote-user: bob"},
	{"X_Remote_User: bob", "X-Remote-User: bob", "x_remote_user: bob"},
	{"X-Note: x", "\tX_Remote_User: bob"}, // obs-fold
	{"X_Remote_User: alice", " bob"},      // obs-fold
}

// TestP11_DAVTrustedHeaderSpellings: alice's requests carrying any
// spelling of the trusted user header are handled by Radicale as alice,
// over HTTP/1.1 and HTTP/2: her event lands in her calendar, bob's stays
// closed to her, and Radicale logs no other user.
func TestP11_DAVTrustedHeaderSpellings(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, radicaleInfo)
	e.user(t, "alice", false)
	_, alice := e.appPassword(t, "alice")
	e.user(t, "bob", false)
	_, bob := e.appPassword(t, "bob")
	e.mkcol(t, "alice", alice)
	e.mkcol(t, "bob", bob)
	logged := len(e.upstreamLog(t))
	var put []string
	for i, hdrs := range userHeaderSpellings {
		name := fmt.Sprintf("p11-%d.ics", i)
		folded := strings.ContainsAny(hdrs[len(hdrs)-1][:1], " \t")
		got := e.rawAnswer(t, "", rawRequest("PUT", "/alice/calendar/"+name, "alice", alice, eventText(name),
			append([]string{"Content-Type: text/calendar"}, hdrs...)...))
		switch {
		case strings.HasPrefix(got, "HTTP/1.1 201 "):
			put = append(put, name)
		case folded && strings.HasPrefix(got, "HTTP/1.1 400 "):
			// The server refused the folded line: nothing went upstream.
		default:
			t.Errorf("PUT to alice's calendar with %q: %q, want 201 as alice", hdrs, got)
		}
		got = e.rawAnswer(t, "", rawRequest("PROPFIND", "/bob/calendar/", "alice", alice, "", append([]string{"Depth: 1"}, hdrs...)...))
		if strings.HasPrefix(got, "HTTP/1.1 207 ") {
			t.Errorf("PROPFIND of bob's calendar with alice's password and %q: %q", hdrs, got)
		}
	}
	for _, h := range []string{"x_remote_user: bob", "X-Remote_User: bob"} {
		for _, v := range []string{"--http1.1", "--http2"} {
			name := fmt.Sprintf("p11-curl%s-%d.ics", v, len(put))
			code, _, stderr := e.curl(t, v, "-X", "PUT", "-u", "alice:"+alice, "-H", h, "-H", "Content-Type: text/calendar",
				"--data-binary", eventText(name), e.base+"/alice/calendar/"+name)
			if code != http.StatusCreated {
				t.Errorf("curl %s PUT with %q: %d %s, want 201 as alice", v, h, code, stderr)
				continue
			}
			put = append(put, name)
		}
	}
	root := filepath.Join(e.peer.Storage, "collection-root")
	for _, name := range put {
		if _, err := os.Stat(filepath.Join(root, "alice", "calendar", name)); err != nil {
			t.Errorf("event %s is not in alice's calendar: %v", name, err)
		}
	}
	if dirs, _ := os.ReadDir(root); len(dirs) != 2 {
		var names []string
		for _, d := range dirs {
			names = append(names, d.Name())
		}
		t.Errorf("Radicale's principals: %q, want alice and bob only", names)
	}
	for _, m := range regexp.MustCompile(`Successful login: (.*)`).FindAllStringSubmatch(e.upstreamLog(t)[logged:], -1) {
		if m[1] != "'alice'" {
			t.Errorf("Radicale logged a login as %s, want 'alice' only", m[1])
		}
	}
}

// TestDAV_EarlyAnswersOverHTTP2: the answers postern gives itself (the
// discovery redirect, the challenge, the refusal of a path) to a request
// with a body come whole over HTTP/2: the body is read first, so the
// stream is not reset under the client while it still sends.
func TestDAV_EarlyAnswersOverHTTP2(t *testing.T) {
	t.Parallel()
	e := startDAVE2E(t, davOptions{})
	cases := []struct {
		path string
		want int
	}{
		{"/.well-known/caldav", http.StatusMovedPermanently},
		{"/alice/", http.StatusUnauthorized},
		{"/alice/calendar/../contacts/", http.StatusBadRequest},
	}
	const rounds = 60
	for _, c := range cases {
		failed := 0
		for range rounds {
			code, version, stderr := e.curl(t, "--http2", "--path-as-is", "-X", "PROPFIND", "-H", "Depth: 0",
				"-H", "Content-Type: application/xml", "--data-binary", propfindBody, e.base+c.path)
			if code != c.want || version != "2" {
				failed++
				if failed == 1 {
					t.Errorf("PROPFIND %s over HTTP/2: %d HTTP/%s %s, want %d over HTTP/2", c.path, code, version, stderr, c.want)
				}
			}
		}
		if failed > 0 {
			t.Errorf("PROPFIND %s: %d of %d failed", c.path, failed, rounds)
		}
	}
}
