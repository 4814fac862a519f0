package imap

import (
	"testing"

	"github.com/postern-dev/postern/proxy"
)

// TestByeSaysWhy: a goodbye carries the RFC 5530 code of its kind and,
// when the owner can act on it and there is an account page, where.
func TestByeSaysWhy(t *testing.T) {
	const url = "https://mail.example.org/account"
	revoked := proxy.Reason{Kind: proxy.CredentialGone, Text: "this app password was revoked", Renew: "make a new one"}
	tests := []struct {
		name       string
		reason     proxy.Reason
		accountURL string
		want       string
	}{
		{"credential gone", revoked, url,
			"* BYE [EXPIRED] this app password was revoked; sign in at " + url + " to make a new one\r\n"},
		{"no account page", revoked, "", "* BYE [EXPIRED] this app password was revoked\r\n"},
		{"account gone", proxy.Reason{Kind: proxy.AccountGone, Text: "this account was disabled"}, url,
			"* BYE [CONTACTADMIN] this account was disabled\r\n"},
		{"unavailable", proxy.Reason{Kind: proxy.Unavailable, Text: "server shutting down"}, url,
			"* BYE [UNAVAILABLE] server shutting down\r\n"},
		{"plain end", proxy.Reason{Text: "session ended by an administrator"}, url,
			"* BYE session ended by an administrator\r\n"},
		{"one line", proxy.Reason{Kind: proxy.CredentialGone, Text: "x\r\n* OK forged", Renew: "go"}, "https://h/\r\na",
			"* BYE [EXPIRED] x* OK forged; sign in at https://h/a to go\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := bye(tt.reason, tt.accountURL).line(""); got != tt.want {
				t.Errorf("got %q, want %q", got, tt.want)
			}
		})
	}
}
