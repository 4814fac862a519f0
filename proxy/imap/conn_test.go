package imap

import (
	"context"
	"encoding/base64"
	"errors"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

const (
	testAccountURL = "https://mail.example/account"
	failureText    = "NO [AUTHENTICATIONFAILED] Authentication failed. Mail apps need an app password: " + testAccountURL
	privacyText    = "NO [PRIVACYREQUIRED] TLS is required to log in: use STARTTLS or the TLS port"
	tlsCaps        = "IMAP4rev1 SASL-IR LITERAL- ID AUTH=PLAIN AUTH=LOGIN"
)

func testProtocol() *Protocol { return New(Config{Adapter: proxy.Adapter{AccountURL: testAccountURL}}) }

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestGreeting(t *testing.T) {
	tests := []struct {
		name string
		mode fronttest.Mode
		want string
	}{
		{"starttls", fronttest.StartTLS, "* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] postern ready"},
		{"cleartext only", fronttest.Cleartext, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] postern ready"},
		{"implicit tls", fronttest.Implicit, "* OK [CAPABILITY " + tlsCaps + "] postern ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), tt.mode)
			if c.greeting != tt.want {
				t.Fatalf("greeting %q, want %q", c.greeting, tt.want)
			}
		})
	}
}

func TestCommands(t *testing.T) {
	var longID strings.Builder
	longID.WriteString("a ID (")
	for i := range maxIDPairs + 1 {
		if i > 0 {
			longID.WriteByte(' ')
		}
		longID.WriteString(`"k" "v"`)
	}
	longID.WriteString(")\r\n")
	tests := []struct {
		name string
		send string
		want []string
	}{
		{"capability", "a CAPABILITY\r\n", []string{"* CAPABILITY " + tlsCaps, "a OK CAPABILITY completed"}},
		{"lower case", "a1 capability\r\n", []string{"* CAPABILITY " + tlsCaps, "a1 OK CAPABILITY completed"}},
		{"noop", "a NOOP\r\n", []string{"a OK NOOP completed"}},
		{"bare LF", "a NOOP\n", []string{"a OK NOOP completed"}},
		{"punctuated tag", "A1.2-x_y NOOP\r\n", []string{"A1.2-x_y OK NOOP completed"}},
		{"id nil", "a ID NIL\r\n", []string{`* ID ("name" "postern")`, "a OK ID completed"}},
		{"id NIL value last", "a ID (\"name\" \"x\" \"os\" NIL)\r\n", []string{`* ID ("name" "postern")`, "a OK ID completed"}},
		{"id empty", "a ID ()\r\n", []string{`* ID ("name" "postern")`, "a OK ID completed"}},
		{"id fields", "a ID (\"name\" \"Thunderbird\" \"os\" NIL \"version\" {5}\r\n", []string{"+ Ready"}},
		{"id string not list", "a ID \"x\"\r\n", []string{"a BAD Syntax error"}},
		{"id too many pairs", longID.String(), []string{"a BAD Syntax error"}},
		{"id field too long", `a ID ("` + strings.Repeat("k", maxIDField+1) + "\" \"v\")\r\n", []string{"a BAD Syntax error"}},
		{"unknown", "a SELECT INBOX\r\n", []string{"a BAD Unknown command or not allowed before login"}},
		{"starttls on tls", "a STARTTLS\r\n", []string{"a BAD STARTTLS is not available on this connection"}},
		{"extra argument", "a NOOP now\r\n", []string{"a BAD Syntax error"}},
		{"missing argument", "a LOGIN\r\n", []string{"a BAD Syntax error"}},
		{"unterminated quote", "a LOGIN \"alice\r\n", []string{"a BAD Syntax error"}},
		{"bad escape", "a LOGIN \"al\\ice\" x\r\n", []string{"a BAD Syntax error"}},
		{"literal without CRLF", "a LOGIN {5} x\r\n", []string{"a BAD Syntax error"}},
		{"literal without digits", "a LOGIN {} x\r\n", []string{"a BAD Syntax error"}},
		{"plus tag", "+ NOOP\r\n", []string{"* BAD Invalid tag"}},
		{"brace tag", "a{1 NOOP\r\n", []string{"* BAD Invalid tag"}},
		{"markup tag", "<b>x</b> NOOP\r\n", []string{"* BAD Invalid tag"}},
		{"empty line", "\r\n", []string{"* BAD Invalid tag"}},
		{"tag without command", "a\r\n", []string{"* BAD Invalid tag"}},
		{"leading space", " NOOP\r\n", []string{"* BAD Invalid tag"}},
		{"not a command name", "GET / HTTP/1.1\r\n", []string{"* BAD Unknown command or not allowed before login"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			c.transact(tt.send, tt.want...)
			if tt.want[0] == "+ Ready" {
				c.transact("128.0)\r\n", `* ID ("name" "postern")`, "a OK ID completed")
			}
			// The dialogue goes on in step after every answer.
			c.transact("b NOOP\r\n", "b OK NOOP completed")
			c.noLogin()
		})
	}
}

type step struct {
	send string
	want string // the next line expected, if any
}

func TestLoginForms(t *testing.T) {
	tests := []struct {
		name   string
		steps  []step
		user   string
		secret string
		client string
	}{
		{"atoms", []step{{send: "a LOGIN alice secret\r\n"}}, "alice", "secret", ""},
		{"quoted with escapes", []step{{send: "a LOGIN \"alice\" \"se\\\"cr\\\\et\"\r\n"}}, "alice", `se"cr\et`, ""},
		{"utf-8 quoted", []step{{send: "a LOGIN \"jürgen\" \"pässword\"\r\n"}}, "jürgen", "pässword", ""},
		{"sync literals", []step{
			{"a LOGIN {5}\r\n", "+ Ready"},
			{"alice {6}\r\n", "+ Ready"},
			{send: "secret\r\n"},
		}, "alice", "secret", ""},
		{"non-sync literals", []step{{send: "a LOGIN {5+}\r\nalice {6+}\r\nsecret\r\n"}}, "alice", "secret", ""},
		{"literal with spaces", []step{
			{"a login alice {9}\r\n", "+ Ready"},
			{send: "a b\"c\\ d)\r\n"},
		}, "alice", `a b"c\ d)`, ""},
		{"plain sasl-ir", []step{{send: "a AUTHENTICATE PLAIN " + b64("\x00alice\x00secret") + "\r\n"}}, "alice", "secret", ""},
		{"plain sasl-ir same authzid", []step{{send: "a AUTHENTICATE PLAIN " + b64("alice\x00alice\x00secret") + "\r\n"}}, "alice", "secret", ""},
		{"plain continuation", []step{
			{"a AUTHENTICATE plain\r\n", "+ "},
			{send: b64("\x00alice\x00secret") + "\r\n"},
		}, "alice", "secret", ""},
		{"login continuation", []step{
			{"a AUTHENTICATE LOGIN\r\n", "+ VXNlcm5hbWU6"},
			{b64("alice") + "\r\n", "+ UGFzc3dvcmQ6"},
			{send: b64("secret") + "\r\n"},
		}, "alice", "secret", ""},
		{"login sasl-ir", []step{
			{"a AUTHENTICATE LOGIN " + b64("alice") + "\r\n", "+ UGFzc3dvcmQ6"},
			{send: b64("secret") + "\r\n"},
		}, "alice", "secret", ""},
		{"after ID", []step{
			{"i ID (\"name\" \"Thunder\\\"bird\" \"version\" \"128.0\")\r\n", `* ID ("name" "postern")`},
			{want: "i OK ID completed"},
			{send: "a LOGIN alice secret\r\n"},
		}, "alice", "secret", `Thunder"bird 128.0`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			for _, s := range tt.steps {
				if s.send != "" {
					c.Write(s.send)
				}
				if s.want != "" {
					if got := c.Line(); got != s.want {
						t.Fatalf("after %q: got %q, want %q", s.send, got, s.want)
					}
				}
			}
			l := c.s.Login(t)
			want := proxy.Login{Tag: "a", Username: tt.user, Secret: tt.secret, ClientName: tt.client}
			if l != want {
				t.Fatalf("login %+v, want %+v", l, want)
			}
		})
	}
}

func TestRefusals(t *testing.T) {
	smuggled := "alice\r\nx DELETE INBOX"
	tests := []struct {
		name  string
		steps []step
	}{
		{"authzid differs", []step{{"a AUTHENTICATE PLAIN " + b64("bob\x00alice\x00secret") + "\r\n", "a " + failureText}}},
		{"authzid differs by case", []step{{"a AUTHENTICATE PLAIN " + b64("Alice\x00alice\x00secret") + "\r\n", "a " + failureText}}},
		{"plain one NUL", []step{{"a AUTHENTICATE PLAIN " + b64("alice\x00secret") + "\r\n", "a " + failureText}}},
		{"plain empty", []step{{"a AUTHENTICATE PLAIN =\r\n", "a " + failureText}}},
		{"plain not utf-8", []step{{"a AUTHENTICATE PLAIN " + b64("\x00al\xffice\x00secret") + "\r\n", "a " + failureText}}},
		{"empty password", []step{{"a LOGIN alice \"\"\r\n", "a " + failureText}}},
		{"CRLF in user literal (P4)", []step{
			{"a LOGIN {21}\r\n", "+ Ready"},
			{smuggled + " secret\r\n", "a " + failureText},
		}},
		{"NUL in password literal", []step{{"a LOGIN alice {4+}\r\nse\x00t\r\n", "a " + failureText}}},
		{"CR in sasl login", []step{
			{"a AUTHENTICATE LOGIN " + b64("ali\rce") + "\r\n", "+ UGFzc3dvcmQ6"},
			{b64("secret") + "\r\n", "a " + failureText},
		}},
		{"cancel", []step{{"a AUTHENTICATE PLAIN\r\n", "+ "}, {"*\r\n", "a BAD Authentication cancelled"}}},
		{"cancel as initial response", []step{{"a AUTHENTICATE PLAIN *\r\n", "a BAD Syntax error"}}},
		{"bad base64", []step{{"a AUTHENTICATE PLAIN\r\n", "+ "}, {"!!!!\r\n", "a BAD Syntax error"}}},
		{"unpadded base64", []step{{"a AUTHENTICATE PLAIN AGFsaWNlAHNlY3JldA\r\n", "a BAD Syntax error"}}},
		{"unknown mechanism", []step{{"a AUTHENTICATE XOAUTH2 dGVzdA==\r\n", "a NO Unsupported authentication mechanism"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			for _, s := range tt.steps {
				c.transact(s.send, s.want)
			}
			c.noLogin()
		})
	}
}

func TestP1_NoCredentialBeforeTLS(t *testing.T) {
	tests := []struct {
		name string
		mode fronttest.Mode
		send string
	}{
		{"login", fronttest.StartTLS, "a LOGIN alice right-password\r\n"},
		{"login literal asks nothing", fronttest.StartTLS, "a LOGIN {5}\r\n"},
		{"login password literal", fronttest.StartTLS, "a LOGIN alice {14}\r\n"},
		{"authenticate", fronttest.StartTLS, "a AUTHENTICATE PLAIN\r\n"},
		{"authenticate sasl-ir", fronttest.StartTLS, "a AUTHENTICATE PLAIN " + b64("\x00alice\x00right-password") + "\r\n"},
		{"no starttls listener", fronttest.Cleartext, "a LOGIN alice right-password\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), tt.mode)
			c.transact(tt.send, "a "+privacyText)
			c.noLogin()
		})
	}
}

func TestP2_PipelinedAfterSTARTTLS(t *testing.T) {
	c := newClient(t, testProtocol(), fronttest.StartTLS)
	c.transact("a STARTTLS\r\nb CAPABILITY\r\n", "a OK Begin TLS negotiation now")
	c.StartTLS()
	// Had "b" been parsed, its answer would come before "c"'s.
	c.transact("c NOOP\r\n", "c OK NOOP completed")
	c.transact("d CAPABILITY\r\n", "* CAPABILITY "+tlsCaps, "d OK CAPABILITY completed")
	c.transact("e STARTTLS\r\n", "e BAD STARTTLS is not available on this connection")
	c.transact("f LOGIN alice secret\r\n")
	if l := c.s.Login(t); l.Username != "alice" || l.Tag != "f" {
		t.Fatalf("login after STARTTLS: %+v", l)
	}
}

func TestSTARTTLSUnavailable(t *testing.T) {
	c := newClient(t, testProtocol(), fronttest.Cleartext)
	c.transact("a STARTTLS\r\n", "a BAD STARTTLS is not available on this connection")
	c.transact("b CAPABILITY\r\n", "* CAPABILITY IMAP4rev1 LOGINDISABLED", "b OK CAPABILITY completed")
	c.noLogin()
}

func TestP3_Limits(t *testing.T) {
	parens := strings.Repeat("(", 4000)
	tests := []struct {
		name    string
		send    string
		want    []string
		closed  error // non-nil: the connection must close with this error
		recover string
	}{
		{"literal of 2^32", "a LOGIN {4294967296}\r\n", []string{"a BAD Literal too large"}, nil, ""},
		{"literal of 20 digits", "a LOGIN {99999999999999999999}\r\n", []string{"a BAD Literal too large"}, nil, ""},
		{"literal over MaxLine", "a LOGIN {8193}\r\n", []string{"a BAD Literal too large"}, nil, ""},
		{"non-sync literal over 4096", "a LOGIN {4097+}\r\n", []string{"* BYE Literal too large"}, errNonSyncTooLarge, ""},
		{"long tag", strings.Repeat("a", 9000) + " NOOP\r\n", []string{"* BYE Line too long"}, errLineTooLong, ""},
		{"long argument", "a LOGIN " + strings.Repeat("x", 9000) + " y\r\n", []string{"* BYE Line too long"}, errLineTooLong, ""},
		{"bad then long", "a NOOP " + strings.Repeat("x", 9000) + "\r\n", []string{"a BAD Syntax error", "* BYE Line too long"}, errLineTooLong, ""},
		{"noop and 4000 parens", "a NOOP " + parens, []string{"a BAD Syntax error"}, nil, "\r\n"},
		{"id and 4000 parens", "a ID " + parens, []string{"a BAD Syntax error"}, nil, "\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			c.transact(tt.send, tt.want...)
			if tt.closed != nil {
				if err := c.s.Result(t); !errors.Is(err, tt.closed) {
					t.Fatalf("ReadLogin: %v, want %v", err, tt.closed)
				}
				return
			}
			c.transact(tt.recover+"b NOOP\r\n", "b OK NOOP completed")
			c.noLogin()
		})
	}
}

func TestTooManyBadCommands(t *testing.T) {
	p := New(Config{Adapter: proxy.Adapter{MaxBadCommands: 3}})
	c := newClient(t, p, fronttest.Implicit)
	c.transact("a FOO\r\n", "a BAD Unknown command or not allowed before login")
	c.transact("b NOOP\r\n", "b OK NOOP completed")
	c.transact("c FOO\r\n", "c BAD Unknown command or not allowed before login")
	c.transact("d FOO\r\n", "d BAD Unknown command or not allowed before login", "* BYE Too many invalid commands")
	if err := c.s.Result(t); !errors.Is(err, errTooManyBad) {
		t.Fatalf("ReadLogin: %v, want %v", err, errTooManyBad)
	}
}

func TestP7_HTTPRequest(t *testing.T) {
	request := "POST /submit HTTP/1.1\r\nHost: victim.example\r\nUser-Agent: Mozilla/5.0\r\n" +
		"Accept: */*\r\nContent-Type: text/plain\r\nContent-Length: 60\r\n\r\n" +
		"<script>alert(1)</script> NOOP\r\nx <img/src=x> NOOP\r\n"
	c := newClient(t, testProtocol(), fronttest.StartTLS)
	c.Write(request)
	lines := c.readAll()
	if err := c.s.Result(t); !errors.Is(err, errTooManyBad) {
		t.Fatalf("ReadLogin: %v, want %v", err, errTooManyBad)
	}
	bad := 0
	for _, l := range lines {
		if strings.Contains(l, " BAD ") {
			bad++
		}
		if !strings.HasPrefix(l, "* ") {
			t.Errorf("line %q is tagged: client bytes echoed", l)
		}
		for _, tok := range strings.Fields(request) {
			if len(tok) > 2 && strings.Contains(l, tok) {
				t.Errorf("line %q echoes %q", l, tok)
			}
		}
	}
	if bad > 5 || bad == 0 {
		t.Errorf("%d BAD answers, want 1..5: %q", bad, lines)
	}
	if last := lines[len(lines)-1]; last != "* BYE Too many invalid commands" {
		t.Errorf("last line %q, want the BYE", last)
	}
}

func TestReadLoginContext(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	c := newClientContext(ctx, t, testProtocol(), fronttest.Implicit)
	c.transact("a NOOP\r\n", "a OK NOOP completed")
	cancel()
	if err := c.s.Result(t); !errors.Is(err, context.Canceled) {
		t.Fatalf("ReadLogin: %v, want context.Canceled", err)
	}
}

func TestClientName(t *testing.T) {
	tests := []struct {
		name, version, want string
	}{
		{"Thunderbird", "128.0", "Thunderbird 128.0"},
		{"Thunderbird", "", "Thunderbird"},
		{"", "1.0", ""},
		{"Evil\r\nX-Log: forged", "1\x00", "EvilX-Log: forged 1"},
		{strings.Repeat("n", 100), strings.Repeat("v", 100), strings.Repeat("n", maxClientPart) + " " + strings.Repeat("v", maxClientPart)},
		{strings.Repeat("é", 40), "", strings.Repeat("é", 32)},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := clientName(tt.name, tt.version); got != tt.want {
				t.Fatalf("clientName(%q, %q) = %q, want %q", tt.name, tt.version, got, tt.want)
			}
		})
	}
}
