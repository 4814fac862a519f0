package testpeer

import (
	"crypto/rand"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// FetchSubjects selects mailbox and returns the subjects of its messages
// in order, failing t on any error.
func FetchSubjects(t testing.TB, c *imapclient.Client, mailbox string) []string {
	t.Helper()
	sel, err := c.Select(mailbox, nil).Wait()
	if err != nil {
		t.Fatalf("select %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil
	}
	var all imap.SeqSet
	all.AddRange(1, sel.NumMessages)
	msgs, err := c.Fetch(all, &imap.FetchOptions{Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("fetch: %v", err)
	}
	var subjects []string
	for _, m := range msgs {
		subjects = append(subjects, m.Envelope.Subject)
	}
	return subjects
}

// TestMessage is a small CRLF message whose subject is unique per call, so
// a test sees exactly the message it delivered.
func TestMessage(to string) (subject string, raw []byte) {
	subject = "postern test " + rand.Text()
	raw = []byte("From: Carol <carol@example.org>\r\n" +
		"To: " + to + "@example.org\r\n" +
		"Subject: " + subject + "\r\n" +
		"Date: Mon, 02 Feb 2026 09:30:00 +0000\r\n" +
		"Message-ID: <" + rand.Text() + "@example.org>\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: text/plain; charset=utf-8\r\n" +
		"\r\n" +
		"Hello " + to + ",\r\nthe quarterly report is attached.\r\n")
	return subject, raw
}
