package testpeer

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/postern-dev/postern/internal/linetest"
)

// verifyingTLS trusts only the peer's CAFile, read the way a client of the
// file (postern's config) would read it.
func verifyingTLS(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatalf("read CAFile: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("CAFile holds no certificate")
	}
	return &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
}

func dialIMAP(t *testing.T, d *DovecotPeer, implicitTLS bool) *imapclient.Client {
	t.Helper()
	opts := &imapclient.Options{TLSConfig: verifyingTLS(t, d.CAFile)}
	var c *imapclient.Client
	var err error
	if implicitTLS {
		c, err = imapclient.DialTLS(d.IMAPSAddr, opts)
	} else {
		c, err = imapclient.DialStartTLS(d.IMAPAddr, opts)
	}
	if err != nil {
		t.Fatalf("dial IMAP: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDovecotIMAPLogin(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, DovecotOptions{})
	tests := []struct {
		name        string
		implicitTLS bool
		user, pass  string
		wantOK      bool
	}{
		{"starttls alice", false, "alice", d.Users["alice"], true},
		{"implicit tls bob", true, "bob", d.Users["bob"], true},
		{"wrong password", false, "alice", d.Users["bob"], false},
		{"unknown user", false, "mallory", d.Users["alice"], false},
		{"master password is not a user password", false, "alice", d.MasterPassword, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialIMAP(t, d, tt.implicitTLS)
			err := c.Login(tt.user, tt.pass).Wait()
			if (err == nil) != tt.wantOK {
				t.Fatalf("login %s: err = %v, want success %v", tt.user, err, tt.wantOK)
			}
			// Only a logged-in session may select; the client's own State
			// is updated after Wait returns, so it cannot tell.
			if _, err := c.Select("INBOX", nil).Wait(); (err == nil) != tt.wantOK {
				t.Fatalf("select after login: err = %v, want success %v", err, tt.wantOK)
			}
		})
	}
}

func TestDovecotRejectsUntrustedCert(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, DovecotOptions{})
	_, err := imapclient.DialTLS(d.IMAPSAddr, &imapclient.Options{TLSConfig: &tls.Config{ServerName: "127.0.0.1"}})
	var unknown x509.UnknownAuthorityError
	if err == nil || !strings.Contains(err.Error(), unknown.Error()) {
		t.Fatalf("dial with system roots: err = %v, want unknown authority", err)
	}
}

func TestDovecotMasterUser(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, DovecotOptions{})
	inboxSubject, raw := TestMessage("alice")
	d.Deliver(t, "alice", "INBOX", raw)
	sentSubject, raw := TestMessage("alice")
	d.Deliver(t, "alice", "Sent", raw)

	tests := []struct {
		name, authzid, authcid, pass string
		mailbox                      string
		wantErr                      bool
		wantSubjects                 []string
	}{
		{"alice inbox", "alice", d.MasterUser, d.MasterPassword, "INBOX", false, []string{inboxSubject}},
		{"alice sent", "alice", d.MasterUser, d.MasterPassword, "Sent", false, []string{sentSubject}},
		{"bob sees none of alice's mail", "bob", d.MasterUser, d.MasterPassword, "INBOX", false, nil},
		{"wrong master password", "alice", d.MasterUser, d.Users["alice"], "", true, nil},
		{"user that does not exist", "mallory", d.MasterUser, d.MasterPassword, "", true, nil},
		{"ordinary user is no master", "alice", "bob", d.Users["bob"], "", true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialIMAP(t, d, false)
			err := c.Authenticate(sasl.NewPlainClient(tt.authzid, tt.authcid, tt.pass))
			if (err != nil) != tt.wantErr {
				t.Fatalf("AUTHENTICATE PLAIN as %s by %s: err = %v, want error %v", tt.authzid, tt.authcid, err, tt.wantErr)
			}
			if tt.wantErr {
				return
			}
			if got := FetchSubjects(t, c, tt.mailbox); strings.Join(got, "|") != strings.Join(tt.wantSubjects, "|") {
				t.Fatalf("subjects in %s = %q, want %q", tt.mailbox, got, tt.wantSubjects)
			}
		})
	}
}

func TestDovecotPOP3(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, DovecotOptions{Users: map[string]string{"carol": "c0rrect-horse"}})
	_, raw := TestMessage("carol")
	d.Deliver(t, "carol", "INBOX", raw)
	wantStat := fmt.Sprintf("+OK 1 %d", len(raw))

	tests := []struct {
		name     string
		addr     func() string
		tls      string // "", "implicit" or "stls"
		pass     string
		wantPass string
	}{
		{"plain", func() string { return d.POP3Addr }, "", "c0rrect-horse", "+OK"},
		{"stls", func() string { return d.POP3Addr }, "stls", "c0rrect-horse", "+OK"},
		{"implicit tls", func() string { return d.POP3SAddr }, "implicit", "c0rrect-horse", "+OK"},
		{"wrong password", func() string { return d.POP3Addr }, "", "wrong", "-ERR"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			conf := d.ClientTLSConfig()
			l := linetest.Dial(t, tt.addr(), conf, tt.tls == "implicit")
			l.Expect("+OK")
			if tt.tls == "stls" {
				l.Send("STLS")
				l.Expect("+OK")
				l.StartTLS()
			}
			l.Send("USER carol")
			l.Expect("+OK")
			l.Send("PASS " + tt.pass)
			if l.Expect(tt.wantPass); tt.wantPass != "+OK" {
				return
			}
			l.Send("STAT")
			if got := l.Line(); got != wantStat {
				t.Fatalf("STAT = %q, want %q", got, wantStat)
			}
			l.Send("QUIT")
			l.Expect("+OK")
		})
	}
}

// TestDovecotTrustsProxyClientAddress proves what postern relies on: from
// loopback, Dovecot takes the client address from IMAP ID and POP3 XCLIENT.
func TestDovecotTrustsProxyClientAddress(t *testing.T) {
	t.Parallel()
	d := Dovecot(t, DovecotOptions{})
	tests := []struct {
		name  string
		ip    string
		login func(l *lineConn, ip string)
	}{
		{"imap id", "203.0.113.7", func(l *lineConn, ip string) {
			l.Expect("* OK")
			imapTagged(l, "a", `ID ("x-originating-ip" "`+ip+`" "x-originating-port" "40001")`)
			if got := imapTagged(l, "b", "LOGIN alice "+d.Users["alice"]); !strings.HasPrefix(got, "b OK") {
				t.Fatalf("LOGIN = %q", got)
			}
		}},
		{"pop3 xclient", "203.0.113.8", func(l *lineConn, ip string) {
			l.Expect("+OK")
			l.Send("XCLIENT ADDR=" + ip + " PORT=40002")
			l.Expect("+OK")
			l.Send("USER bob")
			l.Expect("+OK")
			l.Send("PASS " + d.Users["bob"])
			l.Expect("+OK")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := d.IMAPAddr
			if strings.HasPrefix(tt.name, "pop3") {
				addr = d.POP3Addr
			}
			tt.login(dialLine(t, addr, nil), tt.ip)
			waitForLog(t, d.LogFile, "rip="+tt.ip)
		})
	}
}

// waitForLog polls because Dovecot's log process writes asynchronously to
// the login it records.
func waitForLog(t *testing.T, file, want string) {
	t.Helper()
	deadline := time.Now().Add(linetest.IOGuard)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for time.Now().Before(deadline) {
		data, err := os.ReadFile(file)
		if err != nil {
			t.Fatalf("read log: %v", err)
		}
		if strings.Contains(string(data), want) {
			return
		}
		<-tick.C
	}
	t.Fatalf("%q never appeared in dovecot's log:\n%s", want, diagnostics("", file))
}

// TestDovecotParallelInstancesAreIndependent starts several instances at
// once: each must get its own ports and directories and see only its mail.
func TestDovecotParallelInstancesAreIndependent(t *testing.T) {
	t.Parallel()
	bin := RequirePeer(t, "dovecot")
	peers := make([]*DovecotPeer, 3)
	errs := make([]error, len(peers))
	var wg sync.WaitGroup
	for i := range peers {
		wg.Go(func() { peers[i], errs[i] = startDovecot(t, bin, DovecotOptions{}) })
	}
	wg.Wait()
	owner := map[string]int{} // listening address → instance
	for i, d := range peers {
		if errs[i] != nil {
			t.Fatalf("start instance %d: %v", i, errs[i])
		}
		for _, a := range []string{d.IMAPAddr, d.IMAPSAddr, d.POP3Addr, d.POP3SAddr} {
			if other, dup := owner[a]; dup {
				t.Fatalf("address %s used by instances %d and %d", a, other, i)
			}
			owner[a] = i
		}
	}
	for i, d := range peers {
		t.Run(strconv.Itoa(i), func(t *testing.T) {
			subject, raw := TestMessage("bob")
			d.Deliver(t, "bob", "INBOX", raw)
			c := dialIMAP(t, d, false)
			if err := c.Login("bob", d.Users["bob"]).Wait(); err != nil {
				t.Fatalf("login: %v", err)
			}
			if got := FetchSubjects(t, c, "INBOX"); len(got) != 1 || got[0] != subject {
				t.Fatalf("INBOX subjects = %q, want only %q", got, subject)
			}
		})
	}
}

func TestDovecotStartErrors(t *testing.T) {
	t.Parallel()
	bin := RequirePeer(t, "dovecot")
	tests := []struct {
		name    string
		opts    DovecotOptions
		wantErr string
	}{
		// Dovecot's own complaint must reach the test log.
		{"bad extra config", DovecotOptions{ExtraConfig: "postern_no_such_setting = 1"}, "postern_no_such_setting"},
		{"user name escaping home", DovecotOptions{Users: map[string]string{"../x": "pw"}}, `"../x"`},
		{"password breaking passwd-file", DovecotOptions{Users: map[string]string{"eve": "a:b"}}, `"eve"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			d, err := startDovecot(t, bin, tt.opts)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("startDovecot = %v, %v; want an error mentioning %s", d, err, tt.wantErr)
			}
		})
	}
}
