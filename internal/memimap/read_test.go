package memimap

import (
	"bytes"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestMessages: Messages reads a mailbox as it is now, oldest first,
// without marking anything seen; an unknown user or mailbox is an error.
func TestMessages(t *testing.T) {
	m := startMem(t, Options{})
	extra := []byte("Subject: later\r\n\r\nappended\r\n")
	if err := m.Append("alice", "INBOX", extra); err != nil {
		t.Fatal(err)
	}
	got, err := m.Messages("alice", "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	seed := seedMessages("alice")
	if len(got) != len(seed)+1 || !bytes.Equal(got[0], seed[0]) || !bytes.Equal(got[len(seed)], extra) {
		t.Fatalf("got %d messages, want the %d seeded and the appended one last", len(got), len(seed))
	}
	c := dialMem(t, m)
	if err := c.Login("alice", "alice-pw").Wait(); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumUnseen: true}).Wait()
	if err != nil {
		t.Fatal(err)
	}
	if st.NumUnseen == nil || int(*st.NumUnseen) != len(got) {
		t.Errorf("unseen %v after Messages, want all %d (nothing marked seen)", st.NumUnseen, len(got))
	}
	if _, err := m.Messages("mallory", "INBOX"); err == nil {
		t.Error("an unknown user's messages were read")
	}
	if _, err := m.Messages("alice", "Nope"); err == nil {
		t.Error("an unknown mailbox was read")
	}
}
