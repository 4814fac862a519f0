package memsmtp

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// TestMemSMTP: the master user sends on a user's behalf, from that user's
// own address only and to known users only; what arrives names the
// sender as Postfix would.
func TestMemSMTP(t *testing.T) {
	var mu sync.Mutex
	got := map[string]string{}
	s, err := Start("127.0.0.1:0", Options{Hostname: "mx.test", Users: []string{"demo", "bob"}, MasterUser: "master",
		MasterPassword: "secret", Deliver: func(user string, msg []byte) error {
			mu.Lock()
			defer mu.Unlock()
			got[user] = string(msg)
			return nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	dial := func(t *testing.T, authzid, password string) (*smtp.Client, error) {
		c, err := smtp.Dial(s.Addr())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c, c.Auth(sasl.NewPlainClient(authzid, "master", password))
	}
	if _, err := dial(t, "demo", "wrong"); err == nil {
		t.Error("a wrong master password logged in")
	}
	if _, err := dial(t, "carol", "secret"); err == nil {
		t.Error("the master user logged in as an unknown user")
	}
	c, err := dial(t, "demo", "secret")
	if err != nil {
		t.Fatalf("master login as demo: %v", err)
	}
	var refused *smtp.SMTPError
	if err := c.Mail("bob@localhost", nil); !errors.As(err, &refused) || refused.Code != 553 {
		t.Errorf("demo sending as bob: %v, want 553", err)
	}
	if err := c.Mail("Demo@localhost", nil); err != nil {
		t.Fatalf("MAIL FROM demo: %v", err)
	}
	if err := c.Rcpt("carol@elsewhere.example", nil); !errors.As(err, &refused) || refused.Code != 550 {
		t.Errorf("RCPT to an unknown user: %v, want 550", err)
	}
	if err := c.Rcpt("bob@localhost", nil); err != nil {
		t.Fatalf("RCPT TO bob: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("Subject: hi\r\n\r\nHello.\r\n"))
	if err := w.Close(); err != nil {
		t.Fatalf("DATA: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if msg := got["bob"]; !strings.Contains(msg, "(Authenticated sender: demo)") || !strings.HasSuffix(msg, "Subject: hi\r\n\r\nHello.\r\n") {
		t.Errorf("delivered to bob:\n%s", msg)
	}
	if _, ok := got["demo"]; ok {
		t.Error("delivered to the sender, who was no recipient")
	}
}
