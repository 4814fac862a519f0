package bench

import (
	"crypto/rand"
	"fmt"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/testpeer"
)

// dovecotScale makes one private Dovecot log in fast and hold the
// benchmark's idle sessions (all from loopback, for a handful of users):
//
//   - imap-login and imap processes are reused (Dovecot's high-performance
//     mode) instead of forked per connection. A fork per login costs
//     Dovecot about 3.5 ms of processor time, four times what it costs
//     with reuse, and would hide what the proxies in front of it cost;
//   - IDLE sessions move to imap-hibernate after a second, so 10,000 of
//     them need not mean 10,000 imap processes, and the imap processes they
//     leave idle are stopped after a few seconds instead of a minute. (On
//     a machine whose fs.inotify.max_user_instances is the default 128,
//     Dovecot logs that limit as exceeded once more sessions are open, and
//     then none hibernates; the benchmark does not change system limits.)
//   - per-user/IP and per-service caps raised above the session count.
const dovecotScale = `
mail_max_userip_connections = 100000
default_client_limit = 30000
imap_hibernate_timeout = 1s
service imap-login {
  service_count = 0
  process_min_avail = 2
  process_limit = 8
  client_limit = 30000
  vsz_limit = 2G
}
service imap {
  service_count = 0
  process_min_avail = 4
  idle_kill = 3 secs
  process_limit = 30000
  unix_listener imap-master {
    user = $default_internal_user
  }
}
service imap-hibernate {
  client_limit = 30000
  vsz_limit = 2G
  unix_listener imap-hibernate {
    mode = 0666
  }
}
service anvil {
  client_limit = 70000
}
service auth {
  client_limit = 70000
}
service stats {
  client_limit = 70000
}
`

// Mailboxes holding one large message each, for the fetch figures.
const (
	box1MB  = "big1"
	box10MB = "big10"
)

// mailUsers are the accounts every target serves.
const mailUsers = 16

// startDovecot starts the upstream all targets share, with mailUsers users
// and the large messages delivered to the first one.
func startDovecot(t *testing.T) *testpeer.DovecotPeer {
	t.Helper()
	users := map[string]string{}
	for i := range mailUsers {
		users[userName(i)] = rand.Text()
	}
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{Users: users, ExtraConfig: dovecotScale})
	d.Deliver(t, userName(0), box1MB, bigMessage(1<<20))
	d.Deliver(t, userName(0), box10MB, bigMessage(10<<20))
	return d
}

func userName(i int) string { return fmt.Sprintf("u%02d", i) }

// bigMessage is a plain-text message of about size bytes: 76-character
// lines of random base32, which nothing on the way can compress.
func bigMessage(size int) []byte {
	var b strings.Builder
	b.Grow(size + 1024)
	fmt.Fprintf(&b, "From: Bench <bench@example.org>\r\nTo: u00@example.org\r\n"+
		"Subject: %d bytes\r\nDate: Mon, 05 Jan 2026 08:00:00 +0000\r\n"+
		"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n", size)
	for b.Len() < size {
		line := rand.Text() + rand.Text() + rand.Text()
		b.WriteString(line[:76])
		b.WriteString("\r\n")
	}
	return []byte(b.String())
}
