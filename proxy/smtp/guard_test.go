package smtp

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// event is one step of a relayed session as the guard sees it: bytes from
// the client (Read) or from the upstream (Write).
type event struct {
	fromClient bool
	data       string
}

func cl(s string) event { return event{true, s} }
func up(s string) event { return event{false, s} }

// play runs events through a fresh guard and returns the first error and
// the index of the event that caused it (-1 for none).
func play(g *guard, events []event) (int, error) {
	for i, e := range events {
		var err error
		if e.fromClient {
			err = g.follow([]byte(e.data))
		} else {
			err = g.count([]byte(e.data))
		}
		if err != nil {
			return i, err
		}
	}
	return -1, nil
}

func testGuard(chunking bool) *guard {
	return newGuard(nil, nil, chunking, slog.New(slog.DiscardHandler))
}

func TestGuard(t *testing.T) {
	mail := []event{cl("MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"), up("250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 go\r\n")}
	with := func(events ...event) []event { return append(append([]event(nil), mail...), events...) }
	cases := []struct {
		name     string
		chunking bool
		events   []event
		failAt   int // -1: the session goes on
		err      error
	}{
		{name: "a message", events: with(cl("Subject: x\r\n\r\nXCLIENT LOGIN=bob\r\nAUTH PLAIN x\r\n..\r\n.\r\n"), up("250 queued\r\n"), cl("QUIT\r\n"), up("221 bye\r\n")), failAt: -1},
		{name: "message end split over reads", events: with(cl("body\r"), cl("\n"), cl("."), cl("\r"), cl("\n"), up("250 queued\r\n"), cl("NOOP\r\n")), failAt: -1},
		{name: "next commands pipelined after the message", events: with(cl("body\r\n.\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\n"), up("250 queued\r\n250 ok\r\n250 ok\r\n")), failAt: -1},
		{name: "multi-line replies count once", events: []event{cl("EHLO c\r\nNOOP\r\n"), up("250-a\r\n250-b\r\n250 c\r\n250 ok\r\n"), cl("DATA\r\n"), up("354 go\r\n"), cl("x\r\n.\r\n")}, failAt: -1},
		{name: "XCLIENT", events: []event{cl("XCLIENT LOGIN=bob\r\n")}, failAt: 0, err: errNotRelayed},
		{name: "xclient in lower case after space", events: []event{cl("NOOP\r\n"), cl(" xclient\tLOGIN=bob\r\n")}, failAt: 1, err: errNotRelayed},
		{name: "XCLIENT split over reads", events: []event{cl("XCLI"), cl("ENT LOGIN=bob\r\n")}, failAt: 1, err: errNotRelayed},
		{name: "XFORWARD", events: []event{cl("XFORWARD ADDR=192.0.2.1\r\n")}, failAt: 0, err: errNotRelayed},
		{name: "AUTH", events: []event{cl("AUTH PLAIN AGJvYgBwdw==\r\n")}, failAt: 0, err: errNotRelayed},
		{name: "STARTTLS", events: []event{cl("STARTTLS\r\n")}, failAt: 0, err: errNotRelayed},
		{name: "DATA refused, then commands", events: []event{cl("DATA\r\n"), up("554 5.5.1 no valid recipients\r\n"), cl("XCLIENT LOGIN=bob\r\n")}, failAt: 2, err: errNotRelayed},
		{name: "data before the reply to DATA", events: []event{cl("DATA\r\nXCLIENT LOGIN=bob\r\n")}, failAt: 0, err: errPipelinedData},
		{name: "data before the reply, second read", events: []event{cl("DATA\r\n"), cl("x")}, failAt: 1, err: errPipelinedData},
		{name: "end by LF.LF", events: with(cl("x\n.\nXCLIENT LOGIN=bob\r\n")), failAt: 2, err: errDataEnd},
		{name: "end by LF.CRLF", events: with(cl("x\n.\r\n")), failAt: 2, err: errDataEnd},
		{name: "end by CRLF.LF", events: with(cl("x\r\n.\n")), failAt: 2, err: errDataEnd},
		{name: "end by CR.CR", events: with(cl("x\r.\r")), failAt: 2, err: errDataEnd},
		{name: "CRLF.CR then more", events: with(cl("x\r\n.\rXCLIENT\r\n")), failAt: 2, err: errDataEnd},
		{name: "dot line at the start", events: with(cl(".\n")), failAt: 2, err: errDataEnd},
		{name: "empty message", events: with(cl(".\r\n"), up("250 queued\r\n"), cl("QUIT\r\n")), failAt: -1},
		{name: "BDAT chunk is data", chunking: true, events: []event{cl("BDAT 19\r\nXCLIENT LOGIN=bob\r\n"), cl("BDAT 5 last\r\nhello"), up("250 ok\r\n250 ok\r\n"), cl("NOOP\r\n")}, failAt: -1},
		{name: "BDAT split over reads", chunking: true, events: []event{cl("BDAT 4\r\nXC"), cl("LI"), cl("XCLIENT LOGIN=bob\r\n")}, failAt: 2, err: errNotRelayed},
		{name: "BDAT without CHUNKING upstream", events: []event{cl("BDAT 19\r\nXCLIENT LOGIN=bob\r\n")}, failAt: 0, err: errBDAT},
		{name: "BDAT size not a number", chunking: true, events: []event{cl("BDAT 1x\r\n")}, failAt: 0, err: errBDAT},
		{name: "BDAT two spaces", chunking: true, events: []event{cl("BDAT  5\r\n")}, failAt: 0, err: errBDAT},
		{name: "BDAT huge size", chunking: true, events: []event{cl("BDAT 9999999999999999999\r\n")}, failAt: 0, err: errBDAT},
		{name: "BDAT extra word", chunking: true, events: []event{cl("BDAT 5 LAST now\r\n")}, failAt: 0, err: errBDAT},
		{name: "bare LF", events: []event{cl("NOOP\nXCLIENT LOGIN=bob\r\n")}, failAt: 0, err: errBareLine},
		{name: "bare CR", events: []event{cl("NOOP\rXCLIENT LOGIN=bob\r\n")}, failAt: 0, err: errBareLine},
		{name: "bare CR at a read's end", events: []event{cl("NOOP\r"), cl("X")}, failAt: 1, err: errBareLine},
		{name: "NUL", events: []event{cl("NOOP\x00\r\n")}, failAt: 0, err: errBareLine},
		{name: "command line too long", events: []event{cl("NOOP " + strings.Repeat("x", maxCommandLine))}, failAt: 0, err: errLongCommand},
		{name: "unexpected 354", events: []event{cl("NOOP\r\n"), up("354 go\r\n")}, failAt: 1, err: errLostCount},
		{name: "unexpected 334", events: []event{cl("NOOP\r\n"), up("334 VXNlcm5hbWU6\r\n")}, failAt: 1, err: errLostCount},
		{name: "reply nobody asked for", events: []event{up("250 ok\r\n")}, failAt: 0, err: errLostCount},
		{name: "421 before hanging up", events: []event{up("421 4.4.2 timeout\r\n")}, failAt: -1},
		{name: "garbled reply", events: []event{cl("NOOP\r\n"), up("hello\r\n")}, failAt: 1, err: errUpstreamReply},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			at, err := play(testGuard(tc.chunking), tc.events)
			if at != tc.failAt || !errors.Is(err, tc.err) {
				t.Fatalf("failed at event %d with %v, want %d with %v", at, err, tc.failAt, tc.err)
			}
		})
	}
}

// TestGuardBetweenCommands: a 421 is only said where it reads as a reply.
func TestGuardBetweenCommands(t *testing.T) {
	cases := []struct {
		name   string
		events []event
		want   bool
	}{
		{"just logged in", nil, true},
		{"command sent, reply pending", []event{cl("MAIL FROM:<a@b>\r\n")}, true},
		{"half a command", []event{cl("MAIL FR")}, false},
		{"DATA sent, reply pending", []event{cl("DATA\r\n")}, true},
		{"told to send the message", []event{cl("DATA\r\n"), up("354 go\r\n")}, false},
		{"sending the message", []event{cl("DATA\r\n"), up("354 go\r\n"), cl("Subject: x\r\n")}, false},
		{"message sent", []event{cl("DATA\r\n"), up("354 go\r\n"), cl("x\r\n.\r\n")}, true},
		{"DATA refused", []event{cl("DATA\r\n"), up("554 no\r\n")}, true},
		{"half a reply", []event{cl("EHLO c\r\n"), up("250-a\r\n250")}, false},
		{"in a chunk", []event{cl("BDAT 10\r\nabc")}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			g := testGuard(true)
			if at, err := play(g, tc.events); err != nil {
				t.Fatalf("event %d: %v", at, err)
			}
			if got := g.betweenCommands(); got != tc.want {
				t.Errorf("betweenCommands = %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkGuardMessage follows a 20 MB message (base64 lines, as an
// attachment is sent) through the guard in relay-sized reads.
func BenchmarkGuardMessage(b *testing.B) {
	line := []byte(strings.Repeat("QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo", 3)[:76] + "\r\n")
	msg := bytes.Repeat(line, 20<<20/len(line))
	msg = append(msg, ".\r\n"...)
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		g := testGuard(false)
		if _, err := play(g, []event{cl("DATA\r\n"), up("354 go\r\n")}); err != nil {
			b.Fatal(err)
		}
		for rest := msg; len(rest) > 0; {
			n := min(len(rest), 16<<10)
			if err := g.follow(rest[:n]); err != nil {
				b.Fatal(err)
			}
			rest = rest[n:]
		}
	}
}
