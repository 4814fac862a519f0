package mempop3

import (
	"bufio"
	"net"
	"strings"
	"testing"
	"time"
)

func TestSession(t *testing.T) {
	s, err := Start("127.0.0.1:0", map[string]string{"alice": "pw"}, func(string) ([][]byte, error) {
		return [][]byte{[]byte("Subject: one\n\nfirst\n.dot line\n"), []byte("Subject: two\n\nsecond\n")}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	c, err := net.Dial("tcp", s.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	r := bufio.NewReader(c)
	line := func() string { l, _ := r.ReadString('\n'); return strings.TrimRight(l, "\r\n") }
	say := func(cmd string) string { c.Write([]byte(cmd + "\r\n")); return line() }
	if g := line(); !strings.HasPrefix(g, "+OK") {
		t.Fatalf("greeting %q", g)
	}
	if got := say("STAT"); !strings.HasPrefix(got, "-ERR") {
		t.Errorf("STAT before login: %q", got)
	}
	say("USER alice")
	if got := say("PASS wrong"); !strings.HasPrefix(got, "-ERR [AUTH]") {
		t.Errorf("wrong password: %q", got)
	}
	// AUTH PLAIN: \x00alice\x00pw
	if got := say("AUTH PLAIN AGFsaWNlAHB3"); got != "+OK logged in" {
		t.Fatalf("AUTH PLAIN: %q", got)
	}
	if got := say("STAT"); !strings.HasPrefix(got, "+OK 2 ") {
		t.Errorf("STAT: %q", got)
	}
	if got := say("RETR 1"); got != "+OK" {
		t.Fatalf("RETR: %q", got)
	}
	var body []string
	for l := line(); l != "."; l = line() {
		body = append(body, l)
	}
	if strings.Join(body, "\n") != "Subject: one\n\nfirst\n..dot line" {
		t.Errorf("RETR 1 body %q (dot-stuffed)", body)
	}
	if got := say("DELE 1"); !strings.HasPrefix(got, "+OK") {
		t.Errorf("DELE: %q", got)
	}
	if got := say("STAT"); !strings.HasPrefix(got, "+OK 1 ") {
		t.Errorf("STAT after DELE: %q", got)
	}
	if got := say("QUIT"); !strings.HasPrefix(got, "+OK") {
		t.Errorf("QUIT: %q", got)
	}
}
