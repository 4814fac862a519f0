package imap

import (
	"errors"
	"io"
	"log"
	"net"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-imap/v2/imapserver/imapmemserver"

	"github.com/postern-dev/postern/proxy"
)

// startMemServer runs go-imap's in-memory server on loopback with one user.
func startMemServer(t *testing.T, caps imap.CapSet, user, password string) string {
	t.Helper()
	mem := imapmemserver.New()
	mem.AddUser(imapmemserver.NewUser(user, password))
	srv := imapserver.New(&imapserver.Options{
		NewSession: func(*imapserver.Conn) (imapserver.Session, *imapserver.GreetingData, error) {
			return mem.NewSession(), nil, nil
		},
		Caps:         caps,
		InsecureAuth: true,
		Logger:       log.New(io.Discard, "", 0),
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(ln)
	}()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return ln.Addr().String()
}

func TestUpstreamLoginMemServer(t *testing.T) {
	rev1 := imap.CapSet{imap.CapIMAP4rev1: {}}
	both := imap.CapSet{imap.CapIMAP4rev1: {}, imap.CapIMAP4rev2: {}}
	tests := []struct {
		name     string
		caps     imap.CapSet
		stored   string // the password postern has for the user
		actual   string // the password the server accepts
		sendID   bool
		wantErr  error
		wantRev2 bool
	}{
		{"plain password", rev1, "secret", "secret", false, nil, false},
		{"quotes and backslashes", rev1, `a"b\c d`, `a"b\c d`, false, nil, false},
		{"8-bit password as literal", rev1, "pässwörd", "pässwörd", false, nil, false},
		{"ID not advertised", rev1, "secret", "secret", true, nil, false},
		{"IMAP4rev2 remembered", both, "secret", "secret", false, nil, true},
		{"wrong password", rev1, "stale", "secret", false, errUpstreamRefused, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			addr := startMemServer(t, tt.caps, "alice", tt.actual)
			conn, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			p := New(Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword(tt.stored)}, SendID: tt.sendID})
			up := proxy.NewConn(conn)
			res, err := p.UpstreamLogin(t.Context(), up, "alice", testClientInfo)
			if tt.wantErr != nil {
				if !errors.Is(err, proxy.ErrUpstream) || !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v wrapping ErrUpstream", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("UpstreamLogin: %v", err)
			}
			if !hasCap(res.Capabilities, "IMAP4rev1") && !hasCap(res.Capabilities, "IMAP4rev2") ||
				hasCap(res.Capabilities, "AUTH=PLAIN") || hasCap(res.Capabilities, "LOGINDISABLED") {
				t.Errorf("post-login capabilities %q", res.Capabilities)
			}
			if got := strings.Contains(p.capabilities(true, false), "IMAP4rev2"); got != tt.wantRev2 {
				t.Errorf("IMAP4rev2 offered to clients: %v, want %v", got, tt.wantRev2)
			}
			assertLoggedIn(t, up)
		})
	}
}

// assertLoggedIn proves the upstream session is logged in and in step: a
// command only an authenticated session may run, written after
// UpstreamLogin, gets its own tagged OK.
func assertLoggedIn(t *testing.T, up *proxy.Conn) {
	t.Helper()
	if _, err := io.WriteString(up, "X1 CREATE Archive\r\n"); err != nil {
		t.Fatal(err)
	}
	for {
		line, err := readResponseLine(up.R)
		if err != nil {
			t.Fatalf("after CREATE: %v", err)
		}
		if strings.HasPrefix(line, "X1 ") {
			if !strings.HasPrefix(line, "X1 OK") {
				t.Fatalf("CREATE answered %q", line)
			}
			return
		}
	}
}
