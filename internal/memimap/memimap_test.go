package memimap

import (
	"crypto/tls"
	"errors"
	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/internal/testpeer"
	"net"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

// seedSubjects are the decoded subjects of seedMessages, oldest first.
var seedSubjects = []string{
	"Welcome to your mailbox",
	"Lunch on Thursday?",
	"This week: calendars – and why they sync",
}

func startMem(t *testing.T, opts Options) *Server {
	t.Helper()
	m, err := Start("127.0.0.1:0", map[string]string{"alice": "alice-pw", "bob": "bob-pw"}, opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func dialMem(t *testing.T, m *Server) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(m.Addr(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestLogin(t *testing.T) {
	t.Parallel()
	withMaster := startMem(t, Options{MasterUser: "master", MasterPassword: "master-pw"})
	noMaster := startMem(t, Options{})
	tests := []struct {
		name    string
		m       *Server
		login   func(c *imapclient.Client) error
		wantErr bool
	}{
		{"login", noMaster, loginWith("alice", "alice-pw"), false},
		{"login wrong password", noMaster, loginWith("alice", "bob-pw"), true},
		{"login unknown user", noMaster, loginWith("mallory", "alice-pw"), true},
		{"plain without authzid", noMaster, plainWith("", "bob", "bob-pw"), false},
		{"plain authzid equals authcid", noMaster, plainWith("bob", "bob", "bob-pw"), false},
		{"master as alice", withMaster, plainWith("alice", "master", "master-pw"), false},
		{"master wrong password", withMaster, plainWith("alice", "master", "alice-pw"), true},
		{"master as unknown user", withMaster, plainWith("mallory", "master", "master-pw"), true},
		{"user cannot act as another", withMaster, plainWith("alice", "bob", "bob-pw"), true},
		{"no master configured", noMaster, plainWith("alice", "master", "master-pw"), true},
		{"master credential is no LOGIN", withMaster, loginWith("master", "master-pw"), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := dialMem(t, tt.m)
			err := tt.login(c)
			if (err != nil) != tt.wantErr {
				t.Fatalf("login: err = %v, want error %v", err, tt.wantErr)
			}
			if tt.wantErr {
				var imapErr *imap.Error
				if !errors.As(err, &imapErr) || imapErr.Type != imap.StatusResponseTypeNo {
					t.Fatalf("err = %v, want a tagged NO", err)
				}
				return
			}
			if got := testpeer.FetchSubjects(t, c, "INBOX"); !slices.Equal(got, seedSubjects) {
				t.Fatalf("INBOX subjects = %q, want %q", got, seedSubjects)
			}
		})
	}
}

func loginWith(user, pass string) func(*imapclient.Client) error {
	return func(c *imapclient.Client) error { return c.Login(user, pass).Wait() }
}

func plainWith(authzid, authcid, pass string) func(*imapclient.Client) error {
	return func(c *imapclient.Client) error {
		return c.Authenticate(sasl.NewPlainClient(authzid, authcid, pass))
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	m := startMem(t, Options{})
	inboxSubject, raw := testpeer.TestMessage("alice")
	if err := m.Append("alice", "INBOX", raw); err != nil {
		t.Fatalf("Append INBOX: %v", err)
	}
	archiveSubject, raw := testpeer.TestMessage("alice")
	if err := m.Append("alice", "Archive/2026", raw); err != nil {
		t.Fatalf("Append to a new mailbox: %v", err)
	}
	if err := m.Append("mallory", "INBOX", raw); err == nil {
		t.Fatal("Append for an unknown user succeeded")
	}
	tests := []struct {
		user, mailbox string
		want          []string
	}{
		{"alice", "INBOX", append(slices.Clone(seedSubjects), inboxSubject)},
		{"alice", "Archive/2026", []string{archiveSubject}},
		{"bob", "INBOX", seedSubjects},
		{"bob", "Sent", nil},
	}
	for _, tt := range tests {
		t.Run(tt.user+" "+tt.mailbox, func(t *testing.T) {
			c := dialMem(t, m)
			if err := c.Login(tt.user, tt.user+"-pw").Wait(); err != nil {
				t.Fatalf("login: %v", err)
			}
			if got := testpeer.FetchSubjects(t, c, tt.mailbox); !slices.Equal(got, tt.want) {
				t.Fatalf("subjects = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestStartTLS(t *testing.T) {
	t.Parallel()
	pair, err := certs.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := certs.New(certs.Options{Pairs: []certs.Pair{pair}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certs.CertPool(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	m := startMem(t, Options{TLSConfig: mgr.TLSConfig()})
	c, err := imapclient.DialStartTLS(m.Addr(), &imapclient.Options{TLSConfig: &tls.Config{RootCAs: pool, ServerName: "localhost"}})
	if err != nil {
		t.Fatalf("STARTTLS: %v", err)
	}
	defer c.Close()
	if err := c.Login("bob", "bob-pw").Wait(); err != nil {
		t.Fatalf("login after STARTTLS: %v", err)
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	m, err := Start("", map[string]string{"alice": "pw"})
	if err != nil {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(m.Addr(), nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Login("alice", "pw").Wait(); err != nil {
		t.Fatalf("login: %v", err)
	}
	if err := m.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	<-c.Closed() // Close ends live sessions, not only the listener.
	if conn, err := net.Dial("tcp", m.Addr()); err == nil {
		conn.Close()
		t.Fatal("still accepting after Close")
	}
	if err := m.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestStartRejectsTwoOptions(t *testing.T) {
	t.Parallel()
	if m, err := Start("", nil, Options{}, Options{}); err == nil {
		m.Close()
		t.Fatal("two Options accepted")
	}
}
