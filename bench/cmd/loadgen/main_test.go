package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/postern-dev/postern/bench/load"
)

func TestReadAccounts(t *testing.T) {
	tests := []struct {
		name, file string
		want       []load.Account
		err        string
	}{
		{"pairs, comments and blanks", "# users\nalice secret one\n\n  bob   s2  \n",
			[]load.Account{{User: "alice", Password: "secret one"}, {User: "bob", Password: "s2"}}, ""},
		{"no password", "alice\n", nil, ":1: want"},
		{"empty", "# nothing\n", nil, "no accounts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "accounts")
			if err := os.WriteFile(path, []byte(tt.file), 0o600); err != nil {
				t.Fatal(err)
			}
			got, err := readAccounts(path)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("err %v, want one containing %q", err, tt.err)
				}
				return
			}
			if err != nil || len(got) != len(tt.want) {
				t.Fatalf("got %v, %v; want %v", got, err, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Fatalf("account %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestParseOptions(t *testing.T) {
	accounts := filepath.Join(t.TempDir(), "accounts")
	if err := os.WriteFile(accounts, []byte("alice pw\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	o, err := parseOptions("127.0.0.1:993", true, "", "", accounts, 3)
	if err != nil {
		t.Fatal(err)
	}
	if o.target.TLS == nil || o.target.TLS.ServerName != "127.0.0.1" || len(o.target.Sources) != 3 ||
		o.target.Sources[2].String() != "127.0.1.3" {
		t.Fatalf("target %+v", o.target)
	}
	if _, err := parseOptions("127.0.0.1:993", true, accounts, "", accounts, 0); err == nil {
		t.Fatal("a CA file without a certificate was accepted")
	}
	if err := run(t.Context(), []string{"bogus", "-accounts", accounts}); err == nil {
		t.Fatal("unknown subcommand accepted")
	}
}
