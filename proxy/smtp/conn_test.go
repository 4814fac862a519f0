package smtp

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

// TestEHLO: the answer offers STARTTLS while it can, AUTH only inside TLS,
// and of the upstream's extensions only those a client may use after
// login (not VRFY, ETRN, DSN, XCLIENT or the upstream's own AUTH).
func TestEHLO(t *testing.T) {
	passed := []string{"250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME", "250-ENHANCEDSTATUSCODES", "250-SMTPUTF8"}
	secure := append(append([]string{"250-" + testHost}, passed...), "250-CHUNKING", "250 AUTH PLAIN LOGIN")
	cases := []struct {
		name    string
		mode    fronttest.Mode
		upgrade bool
		want    []string
	}{
		{name: "cleartext offering STARTTLS", mode: fronttest.StartTLS,
			want: append(append([]string{"250-" + testHost}, passed...), "250-CHUNKING", "250 STARTTLS")},
		{name: "cleartext without TLS", want: append(append([]string{"250-" + testHost}, passed...), "250 CHUNKING")},
		{name: "implicit TLS", mode: fronttest.Implicit, want: secure},
		{name: "after STARTTLS", mode: fronttest.StartTLS, upgrade: true, want: secure},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), tc.mode)
			if tc.upgrade {
				c.Send("STARTTLS")
				c.ExpectLines(replyReadyTLS)
				c.StartTLS()
			}
			if got := ehlo(c); !slices.Equal(got, tc.want) {
				t.Errorf("EHLO answered\n%q, want\n%q", got, tc.want)
			}
			c.Send("HELO client.example", "NOOP", "noop with text", "RSET", "QUIT")
			c.ExpectLines("250 "+testHost, replyOK, replyOK, replyOK, replyBye)
			if rest := c.Rest(); rest != "" {
				t.Errorf("bytes after QUIT reply: %q", rest)
			}
			quit(t, s)
		})
	}
}

// TestEHLOUpstreamExtensions: what the client is offered follows the
// upstream (SetUpstream, as a probe refreshes it), and SIZE passes on
// only a number.
func TestEHLOUpstreamExtensions(t *testing.T) {
	cases := []struct {
		name string
		ehlo []string
		want []string
	}{
		{"nothing known", nil, []string{"250-" + testHost, "250 AUTH PLAIN LOGIN"}},
		{"minimal upstream", []string{"250-up", "250-8BITMIME", "250 SIZE"}, []string{"250-" + testHost, "250-SIZE", "250-8BITMIME", "250 AUTH PLAIN LOGIN"}},
		{"SIZE with junk", []string{"250-up", "250 SIZE 10\r\n250 FORGED"}, []string{"250-" + testHost, "250-SIZE", "250 AUTH PLAIN LOGIN"}},
		{"keywords in any case", []string{"250-up", "250 pipelining"}, []string{"250-" + testHost, "250-PIPELINING", "250 AUTH PLAIN LOGIN"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			p := New(cfg)
			ext := Extensions{}
			if tc.ehlo != nil {
				var err error
				if ext, err = ParseEHLO(tc.ehlo); err != nil {
					t.Fatal(err)
				}
			}
			p.SetUpstream(ext)
			c, _ := fronttest.DriveFrontend(t.Context(), t, p, fronttest.Implicit)
			c.ExpectLines(testGreeting)
			if got := ehlo(c); !slices.Equal(got, tc.want) {
				t.Errorf("EHLO answered %q, want %q", got, tc.want)
			}
		})
	}
}

func TestParseEHLO(t *testing.T) {
	ext, err := ParseEHLO(postfixEHLO)
	if err != nil {
		t.Fatal(err)
	}
	if ext["SIZE"] != "10240000" || !ext.Has("CHUNKING") || ext["AUTH"] != "PLAIN LOGIN" || ext.Has("MAIL.EXAMPLE.TEST") {
		t.Errorf("ParseEHLO = %v", ext)
	}
	for _, bad := range [][]string{
		nil, {"250 up", "250 X"}, {"250-up", "250-X"}, {"220-up", "220 X"}, {"250-up", "251 X"}, {"250up"},
	} {
		if ext, err := ParseEHLO(bad); err == nil {
			t.Errorf("ParseEHLO(%q) = %v, want an error", bad, ext)
		}
	}
	// Lines that are no keyword are left out.
	ext, err = ParseEHLO([]string{"250-up", "250-AUTH=PLAIN LOGIN", "250-X_Y", "250 -Z"})
	if err != nil || len(ext) != 0 {
		t.Errorf("ParseEHLO with odd lines = %v, %v", ext, err)
	}
}

// TestP1_NoCredentialBeforeTLS: AUTH on cleartext is refused at once,
// before any challenge, so no login reaches the session (nothing is
// verified or charged).
func TestP1_NoCredentialBeforeTLS(t *testing.T) {
	cases := []string{
		"AUTH PLAIN " + b64("\x00alice\x00right-password"),
		"AUTH PLAIN",
		"AUTH LOGIN " + b64("alice"),
		"AUTH LOGIN",
		"AUTH CRAM-MD5",
	}
	for _, mode := range []fronttest.Mode{fronttest.Cleartext, fronttest.StartTLS} {
		for _, line := range cases {
			t.Run(fmt.Sprintf("%s/starttls=%v", line, mode == fronttest.StartTLS), func(t *testing.T) {
				c, s := startSession(t, testConfig(t), mode)
				if got := ehlo(c); slices.ContainsFunc(got, func(l string) bool { return strings.Contains(l, "AUTH") }) {
					t.Errorf("cleartext EHLO offers AUTH: %q", got)
				}
				c.Send(line)
				c.ExpectLines("530 5.7.0 Must issue a STARTTLS command first")
				c.Send("QUIT")
				c.ExpectLines(replyBye)
				quit(t, s)
			})
		}
	}
}

// TestP2_STARTTLSPipelinedDiscarded: commands sent in the same segment as
// STARTTLS are never answered or acted on after TLS, and the client must
// say EHLO again.
func TestP2_STARTTLSPipelinedDiscarded(t *testing.T) {
	c, s := startSession(t, testConfig(t), fronttest.StartTLS)
	ehlo(c)
	c.Write("STARTTLS\r\nAUTH PLAIN " + b64("\x00mallory\x00secret") + "\r\nNOOP\r\n")
	c.ExpectLines(replyReadyTLS)
	c.StartTLS()
	c.Send("AUTH PLAIN " + b64("\x00alice\x00secret"))
	c.ExpectLines(replyHelloFirst)
	c.Send("QUIT")
	if got := c.Rest(); got != replyBye+"\r\n" {
		t.Errorf("after TLS got %q, want only the QUIT reply", got)
	}
	quit(t, s)
}

func TestSTARTTLSRefused(t *testing.T) {
	cases := []struct {
		name    string
		mode    fronttest.Mode
		upgrade bool
		line    string
		want    string
	}{
		{name: "twice", mode: fronttest.StartTLS, upgrade: true, line: "STARTTLS", want: replyHaveTLS},
		{name: "implicit TLS", mode: fronttest.Implicit, line: "STARTTLS", want: replyHaveTLS},
		{name: "not offered", line: "STARTTLS", want: replyNoTLS},
		{name: "with an argument", mode: fronttest.StartTLS, line: "STARTTLS now", want: replyParams},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), tc.mode)
			if tc.upgrade {
				c.Send("STARTTLS")
				c.ExpectLines(replyReadyTLS)
				c.StartTLS()
			}
			c.Send(tc.line, "NOOP", "QUIT")
			c.ExpectLines(tc.want, replyOK, replyBye)
			quit(t, s)
		})
	}
}

// TestAuthRequired: nothing but the pre-auth commands is answered before
// a login; mail commands get 530, and none reaches anyone.
func TestAuthRequired(t *testing.T) {
	c, s := startSession(t, testConfig(t), fronttest.Implicit)
	ehlo(c)
	c.Send("MAIL FROM:<alice@example.test>", "RCPT TO:<bob@example.test>", "DATA", "QUIT")
	c.ExpectLines(replyAuthRequired, replyAuthRequired, replyAuthRequired, replyBye)
	quit(t, s)
}

// TestP3_LineLimit: an over-long line is refused as soon as the limit is
// passed, without waiting for its end, and the connection closes.
func TestP3_LineLimit(t *testing.T) {
	cases := []struct {
		name    string
		maxLine int
		write   string
		want    []string
		wantErr error
	}{
		{name: "default limit, terminated", write: strings.Repeat("A", 9000) + "\r\n", want: []string{replyLineTooLong}, wantErr: proxy.ErrLineTooLong},
		{name: "default limit, never terminated", write: strings.Repeat("A", 9000), want: []string{replyLineTooLong}, wantErr: proxy.ErrLineTooLong},
		{name: "exactly at limit", maxLine: 64, write: "NOOP " + strings.Repeat("x", 57) + "\r\nQUIT\r\n", want: []string{replyOK, replyBye}, wantErr: ErrQuit},
		{name: "one over limit", maxLine: 64, write: "NOOP " + strings.Repeat("x", 58) + "\r\nQUIT\r\n", want: []string{replyLineTooLong}, wantErr: proxy.ErrLineTooLong},
		{name: "SASL response over limit", maxLine: 64, write: "EHLO c\r\nAUTH PLAIN\r\n" + strings.Repeat("A", 100) + "\r\n",
			want: []string{"250-" + testHost, "250-PIPELINING", "250-SIZE 10240000", "250-8BITMIME", "250-ENHANCEDSTATUSCODES",
				"250-SMTPUTF8", "250-CHUNKING", "250 AUTH PLAIN LOGIN", "334 ", replyLineTooLong}, wantErr: proxy.ErrLineTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.MaxLine = tc.maxLine
			c, s := startSession(t, cfg, fronttest.Implicit)
			c.Write(tc.write)
			c.ExpectLines(tc.want...)
			if err := s.Result(t); !errors.Is(err, tc.wantErr) {
				t.Errorf("ReadLogin error = %v, want %v", err, tc.wantErr)
			}
			if rest := c.Rest(); rest != "" {
				t.Errorf("bytes after the last reply: %q", rest)
			}
		})
	}
}

// TestP3_TooManyBadCommands: refusals the front-end answers itself count,
// so a client (or an HTTP request sent to the port) is closed after five,
// and no reply echoes what it sent.
func TestP3_TooManyBadCommands(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
		want  []string
	}{
		{"HTTP request", []string{"GET / HTTP/1.1", "Host: mx.example.test", "User-Agent: x", "Accept: */*", "", "more"},
			[]string{replyAuthRequired, replySyntax, replySyntax, replySyntax, replyTooManyBad}},
		{"mail without login", []string{"MAIL FROM:<a@b>", "RCPT TO:<c@d>", "DATA", "Subject: x", "body"},
			[]string{replyAuthRequired, replyAuthRequired, replyAuthRequired, replySyntax, replyTooManyBad}},
		{"bad AUTH", []string{"EHLO c", "AUTH", "AUTH X", "AUTH PLAIN !", "AUTH PLAIN " + b64("a"), "AUTH PLAIN ="},
			append(append([]string{replyParams, replyMechanism, replyBadSASL}, testFailure...), replyTooManyBad)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), fronttest.Implicit)
			c.Send(tc.lines...)
			for _, want := range tc.want {
				got := c.Line()
				for strings.HasPrefix(got, "250") {
					got = c.Line() // EHLO's answer
				}
				if got != want {
					t.Fatalf("got %q, want %q", got, want)
				}
			}
			if err := s.Result(t); !errors.Is(err, ErrTooManyBadCommands) {
				t.Errorf("ReadLogin error = %v, want ErrTooManyBadCommands", err)
			}
			if rest := c.Rest(); rest != "" {
				t.Errorf("bytes after the last reply: %q", rest)
			}
		})
	}
}

// TestP3_PreAuthDeadline: ReadLogin ends when its context does, whatever
// the client is doing.
func TestP3_PreAuthDeadline(t *testing.T) {
	for _, tc := range fronttest.ContextEnds {
		t.Run(tc.Name, func(t *testing.T) {
			ctx, cancel := tc.Ctx()
			defer cancel()
			c, s := startSessionContext(ctx, t, testConfig(t), fronttest.Cleartext)
			c.Write("EHLO slow") // and never the end of the line
			cancel()
			if err := s.Result(t); !errors.Is(err, tc.Want) {
				t.Errorf("ReadLogin error = %v, want %v", err, tc.Want)
			}
		})
	}
}

// TestAuthExchanges: PLAIN and LOGIN, with and without an initial
// response, hand the session the credential and the client's EHLO name.
func TestAuthExchanges(t *testing.T) {
	alice := proxy.Login{Username: "alice", Secret: "app password", Hello: "client.example"}
	cases := []struct {
		name  string
		steps [][2]string // client line, expected reply ("" when the login follows)
	}{
		{"PLAIN initial response", [][2]string{{"AUTH PLAIN " + b64("\x00alice\x00app password"), ""}}},
		{"PLAIN authzid = authcid", [][2]string{{"AUTH plain " + b64("alice\x00alice\x00app password"), ""}}},
		{"PLAIN after challenge", [][2]string{{"AUTH PLAIN", "334 "}, {b64("\x00alice\x00app password"), ""}}},
		{"LOGIN", [][2]string{{"AUTH LOGIN", "334 VXNlcm5hbWU6"}, {b64("alice"), "334 UGFzc3dvcmQ6"}, {b64("app password"), ""}}},
		{"LOGIN initial response", [][2]string{{"AUTH LOGIN " + b64("alice"), "334 UGFzc3dvcmQ6"}, {b64("app password"), ""}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), fronttest.Implicit)
			ehlo(c)
			for _, st := range tc.steps {
				c.Send(st[0])
				if st[1] != "" {
					c.ExpectLines(st[1])
				}
			}
			if got := s.Login(t); got != alice {
				t.Fatalf("login = %+v, want %+v", got, alice)
			}
			s.Decide(t, fronttest.Decision{})
			c.ExpectLines(replyAuthOK)
		})
	}
}

// TestAuthRefusedBeforeLogin: malformed exchanges are answered without a
// login; cancelling is not a failure of the credential.
func TestAuthRefusedBeforeLogin(t *testing.T) {
	cases := []struct {
		name  string
		steps [][2]string
	}{
		{"no EHLO yet", [][2]string{{"AUTH PLAIN " + b64("\x00alice\x00pw"), replyHelloFirst}}},
		{"no mechanism", [][2]string{{"EHLO c", ""}, {"AUTH", replyParams}}},
		{"unknown mechanism", [][2]string{{"EHLO c", ""}, {"AUTH CRAM-MD5", replyMechanism}}},
		{"bad base64", [][2]string{{"EHLO c", ""}, {"AUTH PLAIN a=b", replyBadSASL}}},
		{"canceled", [][2]string{{"EHLO c", ""}, {"AUTH PLAIN", "334 "}, {"*", replyCanceled}}},
		{"LOGIN canceled at password", [][2]string{{"EHLO c", ""}, {"AUTH LOGIN " + b64("alice"), "334 UGFzc3dvcmQ6"}, {"*", replyCanceled}}},
		{"bad EHLO", [][2]string{{"EHLO", replyHelloSyntax}, {"EHLO a b", replyHelloSyntax}, {"HELO \x7f", replyHelloSyntax}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), fronttest.Implicit)
			for _, st := range tc.steps {
				if st[1] == "" {
					ehlo(c)
					continue
				}
				c.Send(st[0])
				c.ExpectLines(st[1])
			}
			c.Send("QUIT")
			c.ExpectLines(replyBye)
			quit(t, s)
		})
	}
}

// TestA9_IdenticalFailures: every kind of credential failure, the ones the
// front-end sees itself and the ones the store decides, gives the same
// bytes; the client may then try again on the same connection.
func TestA9_IdenticalFailures(t *testing.T) {
	cases := []struct {
		name     string
		auth     []string
		decision error // nil: refused by the front-end without a login
	}{
		{"unknown user or wrong secret", []string{"AUTH PLAIN " + b64("\x00alice\x00wrong")}, authstore.ErrUnauthorized},
		{"throttled", []string{"AUTH PLAIN " + b64("\x00alice\x00wrong")}, authstore.ErrThrottled},
		{"revoked app password", []string{"AUTH LOGIN " + b64("alice"), b64("revoked")}, fmt.Errorf("app password revoked: %w", authstore.ErrUnauthorized)},
		{"account password of a two-step user", []string{"AUTH PLAIN " + b64("\x00alice\x00account-password")}, fmt.Errorf("second factor required: %w", authstore.ErrUnauthorized)},
		{"kicked during login", []string{"AUTH PLAIN " + b64("\x00alice\x00pw")}, fmt.Errorf("session ended during login: %w", authstore.ErrUnauthorized)},
		{"authzid of another user", []string{"AUTH PLAIN " + b64("bob\x00alice\x00pw")}, nil},
		{"malformed PLAIN", []string{"AUTH PLAIN " + b64("alice\x00pw")}, nil},
		{"empty password", []string{"AUTH LOGIN " + b64("alice"), "="}, nil},
		{"CR LF in user", []string{"AUTH PLAIN " + b64("\x00alice\r\nMAIL FROM:<x>\x00pw")}, nil},
		{"NUL in password", []string{"AUTH LOGIN " + b64("alice"), b64("p\x00w")}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(t), fronttest.Implicit)
			ehlo(c)
			c.Send(tc.auth...)
			if len(tc.auth) == 2 {
				c.ExpectLines("334 UGFzc3dvcmQ6")
			}
			if tc.decision != nil {
				s.Login(t)
				s.Decide(t, fronttest.Decision{Err: tc.decision})
			}
			c.ExpectLines(testFailure...)
			c.Send("AUTH PLAIN " + b64("\x00alice\x00right"))
			if got := s.Login(t); got.Secret != "right" {
				t.Fatalf("retry login = %+v", got)
			}
			s.Decide(t, fronttest.Decision{})
			c.ExpectLines(replyAuthOK)
		})
	}
}

// TestP6_RejectAnswers: store and upstream trouble say 454, never 535.
func TestP6_RejectAnswers(t *testing.T) {
	for _, err := range []error{
		authstore.ErrUnavailable, proxy.ErrUpstream, proxy.ErrLoginRefused,
		fmt.Errorf("dial: %w", proxy.ErrUpstream), errors.New("unexpected"), context.Canceled,
	} {
		t.Run(err.Error(), func(t *testing.T) {
			c, s := startSession(t, testConfig(t), fronttest.Implicit)
			ehlo(c)
			c.Send("AUTH PLAIN " + b64("\x00alice\x00pw"))
			s.Login(t)
			s.Decide(t, fronttest.Decision{Err: err})
			c.ExpectLines("454 4.7.0 Temporary authentication failure, try again later")
		})
	}
}

func TestAcceptAndBye(t *testing.T) {
	grace := time.Date(2030, 5, 1, 12, 0, 0, 0, time.FixedZone("X", 14*3600))
	cases := []struct {
		name       string
		accountURL string
		grant      authstore.Grant
		bye        string
		want       []string
	}{
		{name: "plain", accountURL: testAccountURL, want: []string{replyAuthOK}},
		{
			name: "grace period", accountURL: testAccountURL, grant: authstore.Grant{GraceUntil: grace},
			want: []string{replyAuthOK + ". Warning: from 2030-04-30 two-step verification is required and mail apps need an app password: " + testAccountURL},
		},
		{name: "bye", bye: "credentials changed", want: []string{replyAuthOK, "421 4.7.0 credentials changed"}},
		{name: "bye stays one line", bye: "revoked\r\n250 forged\x00", want: []string{replyAuthOK, "421 4.7.0 revoked  250 forged"}},
		{name: "bye bounded", bye: strings.Repeat("r", 500), want: []string{replyAuthOK, "421 4.7.0 " + strings.Repeat("r", 200)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			cfg.AccountURL = tc.accountURL
			c, s := startSession(t, cfg, fronttest.Implicit)
			ehlo(c)
			c.Send("AUTH PLAIN " + b64("\x00alice\x00pw"))
			s.Login(t)
			s.Decide(t, fronttest.Decision{Grant: tc.grant, Bye: tc.bye})
			c.ExpectLines(tc.want...)
			if rest := c.Rest(); rest != "" {
				t.Errorf("unexpected bytes %q", rest)
			}
		})
	}
}
