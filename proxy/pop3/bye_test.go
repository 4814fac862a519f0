package pop3

import (
	"strings"
	"testing"

	"github.com/postern-dev/postern/proxy"
)

// TestByeSaysWhy: a goodbye carries the RFC 3206 code of its kind and,
// when the owner can act on it and there is an account page, where; the
// line stays within RFC 2449's 512 octets by dropping the page, never by
// cutting it.
func TestByeSaysWhy(t *testing.T) {
	const url = "https://mail.example.org/account"
	revoked := proxy.Reason{Kind: proxy.CredentialGone, Text: "this app password was revoked", Renew: "make a new one"}
	tests := []struct {
		name       string
		reason     proxy.Reason
		accountURL string
		want       string
	}{
		{"credential gone", revoked, url, "-ERR [AUTH] this app password was revoked; sign in at " + url + " to make a new one"},
		{"no account page", revoked, "", "-ERR [AUTH] this app password was revoked"},
		{"account gone", proxy.Reason{Kind: proxy.AccountGone, Text: "this account was disabled"}, url,
			"-ERR [SYS/PERM] this account was disabled"},
		{"unavailable", proxy.Reason{Kind: proxy.Unavailable, Text: "server shutting down"}, url,
			"-ERR [SYS/TEMP] server shutting down"},
		{"plain end", proxy.Reason{Text: "session ended by an administrator"}, url,
			"-ERR [SYS/TEMP] session ended by an administrator"},
		{"page too long for the line", revoked, "https://h/" + strings.Repeat("p", 500), "-ERR [AUTH] this app password was revoked"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := byeReply(tt.reason, tt.accountURL); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
