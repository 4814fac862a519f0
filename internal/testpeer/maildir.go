package testpeer

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Deliver puts raw into user's mailbox ("INBOX", or a folder such as
// "Sent" or "Lists/go") as a new message, the way a local delivery agent
// would: written under tmp/, then renamed into new/.
func (d *DovecotPeer) Deliver(t testing.TB, user, mailbox string, raw []byte) {
	t.Helper()
	if err := d.deliver(user, mailbox, raw); err != nil {
		t.Fatalf("deliver to %s/%s: %v", user, mailbox, err)
	}
}

func (d *DovecotPeer) deliver(user, mailbox string, raw []byte) error {
	if _, ok := d.Users[user]; !ok {
		return fmt.Errorf("no test user %q", user)
	}
	dir, err := d.maildir(user, mailbox)
	if err != nil {
		return err
	}
	n := d.delivered.Add(1)
	name := fmt.Sprintf("%d.P%dQ%d.postern", time.Now().Unix(), os.Getpid(), n)
	tmp := filepath.Join(dir, "tmp", name)
	if err := writeOwned(tmp, raw, 0o600, d.mailOwner()); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "new", name)); err != nil {
		return fmt.Errorf("move into new: %w", err)
	}
	return nil
}

// maildir creates (if needed) and returns the Maildir++ directory of a
// mailbox: the Maildir itself for INBOX, ".A.B" inside it for "A/B".
func (d *DovecotPeer) maildir(user, mailbox string) (string, error) {
	root := filepath.Join(d.home, user, "Maildir")
	dir := root
	if !strings.EqualFold(mailbox, "INBOX") {
		parts := strings.Split(mailbox, "/")
		for _, p := range parts {
			if p == "" || strings.ContainsAny(p, ".\x00") {
				return "", fmt.Errorf("mailbox name %q: parts must be non-empty and without dots", mailbox)
			}
		}
		dir = filepath.Join(root, "."+strings.Join(parts, "."))
	}
	for _, p := range []string{root, dir, filepath.Join(dir, "cur"), filepath.Join(dir, "new"), filepath.Join(dir, "tmp")} {
		if err := d.mkdirMail(p); err != nil {
			return "", err
		}
	}
	return dir, nil
}
