package imap

import (
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// TestGoIMAPClient logs in through the front-end with a real client,
// go-imap's imapclient, over STARTTLS: the way a mail app would.
func TestGoIMAPClient(t *testing.T) {
	tests := []struct {
		name  string
		login func(c *imapclient.Client) error
	}{
		{"LOGIN", func(c *imapclient.Client) error { return c.Login("alice", `s3c"ret`).Wait() }},
		{"AUTHENTICATE PLAIN", func(c *imapclient.Client) error {
			return c.Authenticate(sasl.NewPlainClient("", "alice", `s3c"ret`))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cc, sc := linetest.TCPPair(t)
			serverTLS, clientTLS := testpeer.TLS(t)
			logins := make(chan proxy.Login, 1)
			go func() {
				defer close(logins)
				fe := testProtocol().NewFrontend(proxy.NewConn(sc), serverTLS)
				if fe.Greet() != nil {
					return
				}
				l, err := fe.ReadLogin(t.Context())
				if err != nil {
					return
				}
				upstream := proxy.UpstreamResult{Capabilities: []string{"IMAP4rev1", "IDLE", "MOVE"}}
				if fe.Accept(l, upstream, authstore.Grant{Username: "alice"}) == nil {
					logins <- l
				}
			}()
			c, err := imapclient.NewStartTLS(cc, &imapclient.Options{TLSConfig: clientTLS})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			id, err := c.ID(&imap.IDData{Name: "gotest", Version: "2.0"}).Wait()
			if err != nil || id.Name != "postern" {
				t.Fatalf("ID: %+v, %v", id, err)
			}
			if caps := c.Caps(); !caps.Has(imap.AuthCap(sasl.Plain)) || caps.Has(imap.CapStartTLS) {
				t.Fatalf("capabilities after STARTTLS: %v", caps)
			}
			if err := tt.login(c); err != nil {
				t.Fatalf("login: %v", err)
			}
			if caps := c.Caps(); !caps.Has(imap.CapIdle) || caps.Has(imap.AuthCap(sasl.Plain)) {
				t.Errorf("capabilities after login: %v, want the upstream's", caps)
			}
			l, ok := <-logins
			want := proxy.Login{Tag: l.Tag, Username: "alice", Secret: `s3c"ret`, ClientName: "gotest 2.0"}
			if !ok || l != want || l.Tag == "" {
				t.Fatalf("front-end returned %+v, want %+v", l, want)
			}
		})
	}
}
