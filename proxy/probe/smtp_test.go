package probe

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/smtp"
)

// smtpTarget probes a Postfix as postern's [upstream.smtp] would, with the
// front-end's own check of the EHLO answer.
func smtpTarget(pf *testpeer.PostfixPeer, addr string, sec proxy.Security, login smtp.LoginMode, trusted bool) Target {
	tc := pf.ClientTLSConfig()
	if !trusted {
		tc.RootCAs = nil
	}
	front := smtp.New(smtp.Config{Login: login, Hostname: "postern.example"})
	return Target{Dialect: SMTP(), Key: "upstream.smtp", Upstream: proxy.Upstream{Address: addr, Security: sec, TLS: tc},
		Login: LoginXClient, SMTP: &SMTPCheck{Hostname: "postern.example", Check: front.CheckUpstream}}
}

// TestProbeSMTP: against real Postfix the probe passes when the upstream
// offers what the login needs, and otherwise names the key and the Postfix
// setting to fix: XCLIENT that Postfix hides from an address outside
// smtpd_authorized_xclient_hosts, AUTH PLAIN for a master user, the
// certificate. It never sends XCLIENT or AUTH: Postfix's own summary of
// each probe's session lists EHLO, STARTTLS and QUIT only.
func TestProbeSMTP(t *testing.T) {
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{})
	good := testpeer.Postfix(t, testpeer.PostfixOptions{Dovecot: d})
	untrusting := testpeer.Postfix(t, testpeer.PostfixOptions{Dovecot: d,
		ExtraConfig: "smtpd_authorized_xclient_hosts =\nsmtpd_sasl_auth_enable = no"})
	tests := []struct {
		name    string
		pf      *testpeer.PostfixPeer
		addr    string
		sec     proxy.Security
		login   smtp.LoginMode
		trusted bool
		problem []string // nil: the probe passes
	}{
		{"XCLIENT, STARTTLS", good, good.Addr, proxy.StartTLS, smtp.LoginXClient, true, nil},
		{"XCLIENT, plaintext", good, good.Addr, proxy.None, smtp.LoginXClient, true, nil},
		{"XCLIENT, implicit TLS", good, good.TLSAddr, proxy.Implicit, smtp.LoginXClient, true, nil},
		{"master user", good, good.Addr, proxy.StartTLS, smtp.LoginMaster, true, nil},
		{"XCLIENT not offered to postern", untrusting, untrusting.Addr, proxy.StartTLS, smtp.LoginXClient, true,
			[]string{"upstream.smtp.login: ", "XCLIENT", "smtpd_authorized_xclient_hosts", `login = "master"`}},
		{"no AUTH for a master user", untrusting, untrusting.Addr, proxy.None, smtp.LoginMaster, true,
			[]string{"upstream.smtp.login: ", "AUTH PLAIN", "smtpd_sasl_auth_enable"}},
		{"untrusted certificate", good, good.Addr, proxy.StartTLS, smtp.LoginXClient, false, []string{"upstream.smtp.ca_file"}},
		{"implicit TLS against plaintext", good, good.Addr, proxy.Implicit, smtp.LoginXClient, true,
			[]string{`upstream.smtp.security = "implicit" but`, "plaintext"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			target := smtpTarget(tt.pf, tt.addr, tt.sec, tt.login, tt.trusted)
			r := New(Config{Targets: []Target{target}, Timeout: 5 * time.Second}).probeAll(context.Background())[0]
			if r.OK != (tt.problem == nil) {
				t.Fatalf("OK = %v, problem %q", r.OK, r.Problem)
			}
			for _, w := range tt.problem {
				if !strings.Contains(r.Problem, w) {
					t.Errorf("problem %q does not say %q", r.Problem, w)
				}
			}
		})
	}
	for pf, probes := range map[*testpeer.PostfixPeer]int{good: 6, untrusting: 2} {
		for _, summary := range postfixSummaries(t, pf, probes) {
			if strings.Contains(summary, "xclient") || strings.Contains(summary, "auth") {
				t.Errorf("a probe sent more than EHLO, STARTTLS and QUIT: %s", summary)
			}
		}
	}
}

// postfixSummaries waits until Postfix summed up n sessions (its
// "disconnect from" lines, e.g. "ehlo=2 starttls=1 quit=1 commands=4") and
// returns the summaries.
func postfixSummaries(t *testing.T, pf *testpeer.PostfixPeer, n int) []string {
	t.Helper()
	var out []string
	pf.WaitLogFunc(t, fmt.Sprintf("%d sessions", n), func(log string) bool {
		out = out[:0]
		for _, line := range strings.Split(log, "\n") {
			if _, summary, ok := strings.Cut(line, "disconnect from "); ok {
				out = append(out, summary)
			}
		}
		return len(out) >= n
	})
	return out
}

// TestProbeSMTPRefreshesExtensions: every probe hands the upstream's EHLO
// answer from inside TLS to the check (the front-end's CheckUpstream, which
// keeps the extensions for its answers to clients), so a changed message
// size limit reaches clients at the next probe.
func TestProbeSMTPRefreshesExtensions(t *testing.T) {
	pf := testpeer.Postfix(t, testpeer.PostfixOptions{ExtraConfig: "message_size_limit = 5000000"})
	target := smtpTarget(pf, pf.Addr, proxy.StartTLS, smtp.LoginXClient, true)
	var seen [][]string
	check := target.SMTP.Check
	target.SMTP.Check = func(ehlo []string) error {
		seen = append(seen, ehlo)
		return check(ehlo)
	}
	p := New(Config{Targets: []Target{target}, Timeout: 5 * time.Second})
	for range 2 {
		if r := p.probeAll(context.Background())[0]; !r.OK {
			t.Fatal(r.Problem)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("the check ran %d times over two probes", len(seen))
	}
	ext, err := smtp.ParseEHLO(seen[1])
	if err != nil {
		t.Fatal(err)
	}
	// After STARTTLS: Postfix offers STARTTLS only outside TLS.
	if ext.Has("STARTTLS") || ext["SIZE"] != "5000000" || !ext.Has("XCLIENT") {
		t.Errorf("the EHLO answer handed on is not the one inside TLS: %v", seen[1])
	}
}

// TestLoginRefusedXClientNamesTheSettings: when the upstream refuses
// postern's XCLIENT login for a user, the error names the login key and
// the Postfix setting that trusts postern's address.
func TestLoginRefusedXClientNamesTheSettings(t *testing.T) {
	var logs logBuffer
	tg := target(SMTP(), "upstream.smtp", "127.0.0.1:1", proxy.StartTLS, nil)
	tg.Login = LoginXClient
	New(Config{Targets: []Target{tg}, Logger: logs.logger()}).LoginRefused("upstream.smtp")
	out := logs.String()
	for _, want := range []string{"level=ERROR", "upstream.smtp.login", "smtpd_authorized_xclient_hosts"} {
		if !strings.Contains(out, want) {
			t.Errorf("the error does not say %s: %s", want, out)
		}
	}
}
