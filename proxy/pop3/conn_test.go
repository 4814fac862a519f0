package pop3

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func testConfig() Config { return Config{Adapter: proxy.Adapter{AccountURL: testAccountURL}} }

func TestCapaNoopQuit(t *testing.T) {
	secureCapa := []string{"+OK Capability list follows", "USER", "SASL PLAIN LOGIN", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION postern", "."}
	cases := []struct {
		name     string
		mode     fronttest.Mode
		upgrade  bool
		wantCapa []string
	}{
		{
			name:     "cleartext offering STLS",
			mode:     fronttest.StartTLS,
			wantCapa: []string{"+OK Capability list follows", "STLS", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION postern", "."},
		},
		{
			name:     "cleartext without TLS",
			wantCapa: []string{"+OK Capability list follows", "RESP-CODES", "AUTH-RESP-CODE", "IMPLEMENTATION postern", "."},
		},
		{name: "implicit TLS", mode: fronttest.Implicit, wantCapa: secureCapa},
		{name: "after STLS", mode: fronttest.StartTLS, upgrade: true, wantCapa: secureCapa},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(), tc.mode)
			if tc.upgrade {
				c.Send("STLS")
				c.ExpectLines(replyBeginTLS)
				c.StartTLS()
			}
			c.Send("CAPA")
			c.ExpectLines(tc.wantCapa...)
			c.Send("noop")
			c.ExpectLines("+OK")
			c.Send("QUIT")
			c.ExpectLines("+OK bye")
			if rest := c.Rest(); rest != "" {
				t.Errorf("bytes after QUIT reply: %q", rest)
			}
			quit(t, s)
		})
	}
}

// TestP1_NoCredentialBeforeTLS: credentials on cleartext are refused without
// a login ever reaching the session (so nothing is verified or charged).
func TestP1_NoCredentialBeforeTLS(t *testing.T) {
	cases := []struct {
		name  string
		lines []string
	}{
		{"USER", []string{"USER alice"}},
		{"USER then PASS", []string{"USER alice", "PASS right-password"}},
		{"PASS alone", []string{"PASS right-password"}},
		{"AUTH PLAIN with initial response", []string{"AUTH PLAIN " + b64("\x00alice\x00right-password")}},
		{"AUTH PLAIN without initial response", []string{"AUTH PLAIN"}},
		{"AUTH LOGIN", []string{"AUTH LOGIN"}},
		{"AUTH mechanism list", []string{"AUTH"}},
	}
	for _, offer := range []bool{true, false} {
		mode := fronttest.Cleartext
		if offer {
			mode = fronttest.StartTLS
		}
		for _, tc := range cases {
			t.Run(fmt.Sprintf("%s/stls=%v", tc.name, offer), func(t *testing.T) {
				c, s := startSession(t, testConfig(), mode)
				for _, l := range tc.lines {
					c.Send(l)
					c.ExpectLines("-ERR [SYS/PERM] TLS required")
				}
				c.Send("QUIT")
				c.ExpectLines("+OK bye")
				quitWithoutLogin(t, s)
			})
		}
	}
}

// TestP2_STLSPipelinedDiscarded: commands sent in the same segment as STLS
// are never answered or acted on after TLS.
func TestP2_STLSPipelinedDiscarded(t *testing.T) {
	cases := []struct {
		name      string
		pipelined string
		after     []string // client lines after TLS, each answered by want
		want      []string
	}{
		{name: "CAPA", pipelined: "CAPA\r\n"},
		{
			name:      "USER is forgotten",
			pipelined: "USER mallory\r\n",
			after:     []string{"PASS secret"},
			want:      []string{replyUserFirst},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(), fronttest.StartTLS)
			c.Write("STLS\r\n" + tc.pipelined)
			c.ExpectLines(replyBeginTLS)
			c.StartTLS()
			for i, l := range tc.after {
				c.Send(l)
				c.ExpectLines(tc.want[i])
			}
			c.Send("QUIT")
			if got := c.Rest(); got != "+OK bye\r\n" {
				t.Errorf("after TLS got %q, want only the QUIT reply", got)
			}
			quitWithoutLogin(t, s)
		})
	}
}

func TestSTLSRefused(t *testing.T) {
	cases := []struct {
		name    string
		mode    fronttest.Mode
		upgrade bool
		want    string
	}{
		{name: "twice", mode: fronttest.StartTLS, upgrade: true, want: replyHaveTLS},
		{name: "implicit TLS", mode: fronttest.Implicit, want: replyHaveTLS},
		{name: "not offered", want: replyNoTLS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(), tc.mode)
			if tc.upgrade {
				c.Send("STLS")
				c.ExpectLines(replyBeginTLS)
				c.StartTLS()
			}
			c.Send("STLS")
			c.ExpectLines(tc.want)
			c.Send("NOOP")
			c.ExpectLines("+OK")
			c.Send("QUIT")
			c.ExpectLines("+OK bye")
			quit(t, s)
		})
	}
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
		{name: "default limit, terminated", write: strings.Repeat("A", 9000) + "\r\n", want: []string{replyLineTooLong}, wantErr: errLineTooLong},
		{name: "default limit, never terminated", write: strings.Repeat("A", 9000), want: []string{replyLineTooLong}, wantErr: errLineTooLong},
		{name: "exactly at limit", maxLine: 64, write: "NOOP " + strings.Repeat("x", 57) + "\r\nQUIT\r\n", want: []string{"+OK", "+OK bye"}, wantErr: errQuit},
		{name: "one over limit", maxLine: 64, write: "NOOP " + strings.Repeat("x", 58) + "\r\nQUIT\r\n", want: []string{replyLineTooLong}, wantErr: errLineTooLong},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxLine = tc.maxLine
			c, s := startSession(t, cfg, fronttest.Cleartext)
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

func TestP3_TooManyBadCommands(t *testing.T) {
	cases := []struct {
		name  string
		max   int
		lines []string
		want  []string // replies before the final one
	}{
		{
			name:  "default allowance",
			lines: []string{"STAT", "LIST", "RETR 1", "APOP a b", "DELE 1"},
			want:  []string{replyUnknown, replyUnknown, replyUnknown, replyUnknown},
		},
		{
			name:  "configured allowance",
			max:   2,
			lines: []string{"STAT", "STAT"},
			want:  []string{replyUnknown},
		},
		{
			name:  "every kind of refusal counts",
			lines: []string{"PASS x", "AUTH CRAM-MD5", "AUTH PLAIN !!", "USER", "XYZZY"},
			want:  []string{replyUserFirst, replyMechanism, replyBadSASL, replySyntax},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.MaxBadCommands = tc.max
			c, s := startSession(t, cfg, fronttest.Implicit)
			for i, l := range tc.lines {
				c.Send(l)
				if i < len(tc.want) {
					c.ExpectLines(tc.want[i])
				}
			}
			c.ExpectLines(replyTooManyBad)
			if rest := c.Rest(); rest != "" {
				t.Errorf("bytes after the last reply: %q", rest)
			}
			if err := s.Result(t); !errors.Is(err, errTooManyBadCommands) {
				t.Errorf("ReadLogin error = %v, want errTooManyBadCommands", err)
			}
		})
	}
}

// TestP7_HTTPRequest: an HTTP request gets a few fixed -ERRs, none echoing
// a byte of it, then the connection closes.
func TestP7_HTTPRequest(t *testing.T) {
	c, s := startSession(t, testConfig(), fronttest.StartTLS)
	c.Write("GET /<script>alert(1)</script> HTTP/1.1\r\nHost: evil.example\r\n" +
		"User-Agent: Mozilla/5.0\r\nAccept: */*\r\nCookie: a=b\r\nX-Pad: 1\r\n\r\n")
	got := strings.Split(strings.TrimSuffix(c.Rest(), "\r\n"), "\r\n")
	if len(got) > proxy.DefaultMaxBadCommands {
		t.Errorf("%d replies, want at most %d: %q", len(got), proxy.DefaultMaxBadCommands, got)
	}
	for _, line := range got {
		if !strings.HasPrefix(line, "-ERR ") {
			t.Errorf("reply %q is not -ERR", line)
		}
		for _, echo := range []string{"GET", "HTTP", "script", "evil", "Host", "Mozilla", "Cookie", "*/*"} {
			if strings.Contains(line, echo) {
				t.Errorf("reply %q echoes %q", line, echo)
			}
		}
	}
	if err := s.Result(t); !errors.Is(err, errTooManyBadCommands) {
		t.Errorf("ReadLogin error = %v, want errTooManyBadCommands", err)
	}
}

// step is one client line and the replies it must get.
type step struct {
	send string
	want []string
}

func st(send string, want ...string) step { return step{send: send, want: want} }

func TestLoginForms(t *testing.T) {
	alice := &proxy.Login{Username: "alice", Secret: "secret"}
	cases := []struct {
		name  string
		steps []step
		login *proxy.Login // nil: the steps must not produce one
	}{
		{name: "USER PASS", steps: []step{st("USER alice", "+OK"), st("PASS secret")}, login: alice},
		{name: "lower-case commands", steps: []step{st("user alice", "+OK"), st("pass secret")}, login: alice},
		{name: "PASS keeps spaces", steps: []step{st("USER alice", "+OK"), st("PASS abcd efgh ijkl mnop")},
			login: &proxy.Login{Username: "alice", Secret: "abcd efgh ijkl mnop"}},
		{name: "USER any name", steps: []step{st("USER no-such-user@nowhere.invalid", "+OK"), st("PASS x")},
			login: &proxy.Login{Username: "no-such-user@nowhere.invalid", Secret: "x"}},
		{name: "last USER wins", steps: []step{st("USER bob", "+OK"), st("USER alice", "+OK"), st("PASS secret")}, login: alice},
		{name: "USER with NUL", steps: []step{st("USER al\x00ice", "+OK"), st("PASS secret", testFailure)}},
		{name: "PASS with CR", steps: []step{st("USER alice", "+OK"), st("PASS sec\rret", testFailure)}},
		{name: "PASS empty", steps: []step{st("USER alice", "+OK"), st("PASS ", testFailure)}},
		{name: "PASS before USER", steps: []step{st("PASS secret", replyUserFirst)}},
		{name: "PLAIN initial response", steps: []step{st("AUTH PLAIN " + b64("\x00alice\x00secret"))}, login: alice},
		{name: "PLAIN authzid equals authcid", steps: []step{st("AUTH PLAIN " + b64("alice\x00alice\x00secret"))}, login: alice},
		{name: "PLAIN lower-case mechanism", steps: []step{st("auth plain " + b64("\x00alice\x00secret"))}, login: alice},
		{name: "PLAIN continuation", steps: []step{st("AUTH PLAIN", "+ "), st(b64("\x00alice\x00secret"))}, login: alice},
		{name: "PLAIN authzid differs", steps: []step{st("AUTH PLAIN "+b64("admin\x00alice\x00secret"), testFailure)}},
		{name: "PLAIN cancel", steps: []step{st("AUTH PLAIN", "+ "), st("*", replyCanceled)}},
		{name: "PLAIN bad base64", steps: []step{st("AUTH PLAIN !!!", replyBadSASL)}},
		{name: "PLAIN empty initial response", steps: []step{st("AUTH PLAIN =", testFailure)}},
		{name: "PLAIN NUL in password", steps: []step{st("AUTH PLAIN "+b64("\x00alice\x00sec\x00ret"), testFailure)}},
		{name: "PLAIN LF in username", steps: []step{st("AUTH PLAIN "+b64("\x00alice\nDELE 1\x00secret"), testFailure)}},
		{name: "LOGIN", steps: []step{st("AUTH LOGIN", replyLoginUser), st(b64("alice"), replyLoginPass), st(b64("secret"))}, login: alice},
		{name: "LOGIN initial response", steps: []step{st("AUTH LOGIN "+b64("alice"), replyLoginPass), st(b64("secret"))}, login: alice},
		{name: "LOGIN cancel at password", steps: []step{st("AUTH LOGIN", replyLoginUser), st(b64("alice"), replyLoginPass), st("*", replyCanceled)}},
		{name: "LOGIN empty password", steps: []step{st("AUTH LOGIN "+b64("alice"), replyLoginPass), st("=", testFailure)}},
		{name: "LOGIN CR in password", steps: []step{st("AUTH LOGIN "+b64("alice"), replyLoginPass), st(b64("a\rb"), testFailure)}},
		{name: "unsupported mechanism", steps: []step{st("AUTH CRAM-MD5", replyMechanism)}},
		{name: "mechanism list", steps: []step{st("AUTH", "+OK Mechanisms follow", "PLAIN", "LOGIN", ".")}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(), fronttest.Implicit)
			for _, stp := range tc.steps {
				c.Send(stp.send)
				c.ExpectLines(stp.want...)
			}
			if tc.login != nil {
				if got := s.Login(t); got != *tc.login {
					t.Fatalf("login = %+v, want %+v", got, *tc.login)
				}
				s.Decide(t, fronttest.Decision{Err: authstore.ErrUnauthorized})
				c.ExpectLines(testFailure)
			}
			c.Send("QUIT")
			c.ExpectLines("+OK bye")
			quitWithoutLogin(t, s)
		})
	}
}

// TestRejectAnswers: every credential failure gives the same bytes; store
// and upstream trouble say "try later"; the client may then try again.
func TestRejectAnswers(t *testing.T) {
	const temp = "-ERR [SYS/TEMP] Temporary failure, try again later"
	cases := []struct {
		name string
		err  error
		want string
	}{
		{"unauthorized", authstore.ErrUnauthorized, testFailure},
		{"throttled", authstore.ErrThrottled, testFailure},
		{"wrapped unauthorized", fmt.Errorf("app password revoked: %w", authstore.ErrUnauthorized), testFailure},
		{"store unavailable", authstore.ErrUnavailable, temp},
		{"upstream", proxy.ErrUpstream, temp},
		{"wrapped upstream", fmt.Errorf("dial: %w", proxy.ErrUpstream), temp},
		{"unexpected", errors.New("something else"), temp},
		{"canceled", context.Canceled, temp},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, testConfig(), fronttest.Implicit)
			c.Send("USER alice")
			c.ExpectLines("+OK")
			c.Send("PASS first")
			s.Login(t)
			s.Decide(t, fronttest.Decision{Err: tc.err})
			c.ExpectLines(tc.want)
			c.Send("PASS second")
			c.ExpectLines(replyUserFirst)
			c.Send("USER alice")
			c.ExpectLines("+OK")
			c.Send("PASS second")
			if got := s.Login(t); got.Secret != "second" {
				t.Fatalf("retry login secret = %q", got.Secret)
			}
			s.Decide(t, fronttest.Decision{})
			c.ExpectLines(replyLoggedIn)
			if err := s.Result(t); err != nil {
				t.Errorf("session error = %v", err)
			}
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
		{name: "plain", accountURL: testAccountURL, want: []string{"+OK Logged in"}},
		{
			name: "grace period", accountURL: testAccountURL, grant: authstore.Grant{GraceUntil: grace},
			want: []string{"+OK Logged in. Warning: from 2030-04-30 two-step verification is required and mail apps need an app password: " + testAccountURL},
		},
		{
			name: "grace period without account URL", grant: authstore.Grant{GraceUntil: grace},
			want: []string{"+OK Logged in. Warning: from 2030-04-30 two-step verification is required and mail apps need an app password."},
		},
		{name: "bye", accountURL: testAccountURL, bye: "Server shutting down", want: []string{"+OK Logged in", "-ERR [SYS/TEMP] Server shutting down"}},
		{name: "bye stays one line", accountURL: testAccountURL, bye: "revoked\r\n+OK forged\x00", want: []string{"+OK Logged in", "-ERR [SYS/TEMP] revoked  +OK forged"}},
		{name: "bye bounded", accountURL: testAccountURL, bye: strings.Repeat("r", 500), want: []string{"+OK Logged in", "-ERR [SYS/TEMP] " + strings.Repeat("r", 200)}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, s := startSession(t, Config{Adapter: proxy.Adapter{AccountURL: tc.accountURL}}, fronttest.Implicit)
			c.Send("AUTH PLAIN " + b64("\x00alice\x00secret"))
			s.Login(t)
			s.Decide(t, fronttest.Decision{Grant: tc.grant, Bye: tc.bye})
			c.ExpectLines(tc.want...)
			if err := s.Result(t); err != nil {
				t.Errorf("session error = %v", err)
			}
			if rest := c.Rest(); rest != "" {
				t.Errorf("unexpected bytes %q", rest)
			}
		})
	}
}

func TestReadLoginContext(t *testing.T) {
	for _, tc := range fronttest.ContextEnds {
		t.Run(tc.Name, func(t *testing.T) {
			ctx, cancel := tc.Ctx()
			defer cancel()
			c, s := startSessionContext(ctx, t, testConfig(), fronttest.Cleartext)
			// The client sends nothing after the greeting: only ctx can
			// end ReadLogin.
			cancel()
			if err := s.Result(t); !errors.Is(err, tc.Want) {
				t.Errorf("ReadLogin error = %v, want %v", err, tc.Want)
			}
			if rest := c.Rest(); rest != "" {
				t.Errorf("unexpected bytes %q", rest)
			}
		})
	}
}
