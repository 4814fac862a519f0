package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/testpeer"
)

// TestDemoPrintedCurlListsMailbox runs `postern demo` in-process and pastes
// the curl commands it prints, as a newcomer would.
func TestDemoPrintedCurlListsMailbox(t *testing.T) {
	testpeer.RequirePeer(t, "curl")
	d := runDemo(t)
	var commands []string
	endpoints := map[string]string{} // scheme → URL
	for _, line := range d.lines {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "curl ") {
			commands = append(commands, line)
		}
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(f[len(f)-1], "://") {
			u := f[len(f)-1]
			scheme, _, _ := strings.Cut(u, "://")
			endpoints[scheme] = u
		}
	}
	if len(commands) != 5 {
		t.Fatalf("demo printed %d curl commands:\n%s", len(commands), strings.Join(d.lines, "\n"))
	}
	list := runShell(t, commands[0])
	for _, want := range []string{"* 1 FETCH", "* 3 FETCH", "Welcome to your mailbox"} {
		if !strings.Contains(list, want) {
			t.Errorf("listing lacks %q:\n%s", want, list)
		}
	}
	if msg := runShell(t, commands[1]); !strings.Contains(msg, "Subject: Welcome to your mailbox") {
		t.Errorf("first message:\n%s", msg)
	}
	if out := runShell(t, commands[2]); !strings.Contains(out, `"sessions":[`) {
		t.Errorf("admin curl:\n%s", out)
	}
	// The PROPFIND lists the demo calendar's event through postern.
	if cal := runShell(t, commands[3]); !strings.Contains(cal, "welcome.ics") || !strings.Contains(cal, "207") && !strings.Contains(cal, "multistatus") {
		t.Errorf("calendar PROPFIND:\n%s", cal)
	}
	// Every protocol's endpoint is printed as a URL; POP3 serves the mailbox.
	for _, scheme := range []string{"imaps", "imap", "pop3s", "pop3", "smtps", "smtp", "https"} {
		if endpoints[scheme] == "" {
			t.Errorf("no %s:// endpoint printed (got %v)", scheme, endpoints)
		}
	}
	cacert, user, _ := strings.Cut(strings.TrimPrefix(commands[0], "curl --cacert "), " ")
	_, user, _ = strings.Cut(user, "--user ")
	user, _, _ = strings.Cut(user, " ")
	if msg := runShell(t, "curl --cacert "+cacert+" '"+endpoints["pop3s"]+"/1' --user "+user); !strings.Contains(msg, "Subject: Welcome to your mailbox") {
		t.Errorf("first message over POP3:\n%s", msg)
	}
	// The account password is refused: two-step verification is on.
	bad := strings.Replace(commands[0], "--user 'demo:", "--user 'demo:x", 1)
	if out, err := exec.Command("sh", "-c", bad+" -s -S").CombinedOutput(); err == nil {
		t.Errorf("a wrong app password listed the mailbox:\n%s", out)
	}
}

// TestDemoSendsThroughPostern: the printed send command, pasted as it is,
// sends a message through postern's SMTP listener with the demo app
// password, and the printed listing then shows it in the demo mailbox
// over IMAP. The printed smtp:// URL works for a client that insists on
// STARTTLS; the account password sends nothing (two-step is on).
func TestDemoSendsThroughPostern(t *testing.T) {
	testpeer.RequirePeer(t, "curl")
	d := runDemo(t)
	var send, list string
	for _, line := range d.lines {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "curl ") && strings.Contains(line, "smtps://"):
			send = line
		case strings.HasPrefix(line, "curl ") && strings.Contains(line, "FETCH 1:*"):
			list = line
		}
	}
	if send == "" || list == "" {
		t.Fatalf("no send or listing command printed:\n%s", strings.Join(d.lines, "\n"))
	}
	runShell(t, send)
	smtps, smtp := d.field(t, "SMTP, implicit TLS"), d.field(t, "SMTP, STARTTLS")
	runShell(t, strings.Replace(send, "'"+smtps+"'", "'"+smtp+"' --ssl-reqd", 1))
	if got := runShell(t, list); strings.Count(got, "Sent through postern") != 2 {
		t.Errorf("the listing does not show the two messages sent:\n%s", got)
	}
	app := strings.ReplaceAll(strings.TrimPrefix(strings.TrimSpace(d.lineOf(t, "app password")), "app password"), " ", "")
	bad := strings.Replace(send, demoUser+":"+app, demoUser+":"+d.field(t, "account password"), 1)
	if out, err := exec.Command("sh", "-c", bad+" -s -S").CombinedOutput(); err == nil || !strings.Contains(string(out), "Login denied") {
		t.Errorf("the account password of a two-step user sent mail: %v\n%s", err, out)
	}
}

func runShell(t *testing.T, cmd string) string {
	t.Helper()
	out, err := exec.Command("sh", "-c", cmd+" -s -S").CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	return string(out)
}
