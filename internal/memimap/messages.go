package memimap

import "strings"

// seedMessages are the messages every in-memory account starts with: a
// welcome note, a colleague's plain-text mail and an HTML newsletter, so a
// demo client shows something that looks like a mailbox.
func seedMessages(user string) [][]byte {
	to := user + "@example.org"
	msgs := []string{
		`From: Postmaster <postmaster@example.org>
To: ` + to + `
Subject: Welcome to your mailbox
Date: Mon, 05 Jan 2026 08:00:00 +0000
Message-ID: <welcome-` + user + `@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8

Hello ` + user + `,

your account is ready. Mail clients sign in with an app password,
which you can create on your account page.

-- 
The postmaster
`,
		`From: Dana Kim <dana@example.org>
To: ` + to + `
Cc: team@example.org
Subject: Lunch on Thursday?
Date: Tue, 03 Feb 2026 11:42:17 +0100
Message-ID: <lunch-` + user + `@example.org>
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: 8bit

Hi,

the new café next to the station opens on Thursday. 12:30?

Dana
`,
		`From: Example Weekly <news@example.net>
To: ` + to + `
Subject: =?utf-8?q?This_week:_calendars_=E2=80=93_and_why_they_sync?=
Date: Fri, 06 Feb 2026 07:15:00 -0500
Message-ID: <weekly-` + user + `@example.net>
List-Unsubscribe: <mailto:unsubscribe@example.net>
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary="b1"

--b1
Content-Type: text/plain; charset=utf-8

This week: how CalDAV clients find your calendars.

--b1
Content-Type: text/html; charset=utf-8

<p>This week: how <b>CalDAV</b> clients find your calendars.</p>

--b1--
`,
	}
	out := make([][]byte, len(msgs))
	for i, m := range msgs {
		// Messages on the wire end lines with CRLF (RFC 5322 section 2.1).
		out[i] = []byte(strings.ReplaceAll(m, "\n", "\r\n"))
	}
	return out
}

// SeedMessages returns the messages every user's INBOX starts with (a
// running server's current ones are Server.Messages).
func SeedMessages(user string) [][]byte { return seedMessages(user) }
