package memimap

import (
	"cmp"
	"fmt"
	"net"
	"slices"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// readTimeout bounds Messages: the server is in-process, so this only
// keeps a wedged server from hanging a POP3 login forever.
const readTimeout = 10 * time.Second

// Messages returns the messages now in user's mailbox, oldest first. The
// memory backend keeps its messages to itself, so they are read the way
// any client reads them: log in, EXAMINE (nothing changes: no \Seen, no
// \Recent cleared), FETCH BODY.PEEK[]. Another in-process server (the
// demo's POP3) serves them, so both protocols show one mailbox.
func (m *Server) Messages(user, mailbox string) ([][]byte, error) {
	u, ok := m.users[user]
	if !ok {
		return nil, fmt.Errorf("messages: no user %q", user)
	}
	conn, err := net.DialTimeout("tcp", m.Addr(), readTimeout)
	if err != nil {
		return nil, fmt.Errorf("messages of %s: %w", user, err)
	}
	conn.SetDeadline(time.Now().Add(readTimeout))
	c := imapclient.New(conn, nil)
	defer c.Close()
	if err := c.Login(user, u.password).Wait(); err != nil {
		return nil, fmt.Errorf("messages of %s: login: %w", user, err)
	}
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("messages of %s: examine %s: %w", user, mailbox, err)
	}
	if sel.NumMessages == 0 {
		return nil, nil
	}
	body := &imap.FetchItemBodySection{Peek: true}
	var all imap.SeqSet
	all.AddRange(1, 0) // 1:*
	msgs, err := c.Fetch(all, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil {
		return nil, fmt.Errorf("messages of %s: fetch: %w", user, err)
	}
	slices.SortFunc(msgs, func(a, b *imapclient.FetchMessageBuffer) int { return cmp.Compare(a.SeqNum, b.SeqNum) })
	out := make([][]byte, len(msgs))
	for i, msg := range msgs {
		out[i] = msg.FindBodySection(body)
	}
	return out, nil
}
