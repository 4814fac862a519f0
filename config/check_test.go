package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFile(t *testing.T) {
	good := writeFile(t, "good.toml", storedLogins)
	// The rest of the file is valid: check-config also reports what
	// Validate finds (TestCheckFileReportsEveryKind).
	bad := writeFile(t, "bad.toml", "[imap]\nlisten_tsl = ':993'\n[limits]\nmax_connections = 'many'\n"+storedLogins)
	missing := filepath.Join(t.TempDir(), "missing.toml")
	tests := []struct {
		name, path string
		code       int
		want       []string
	}{
		{"valid", good, 0, []string{"ok"}},
		{"problems one per line", bad, 1, []string{
			bad + ":2:1: imap.listen_tsl: unknown key (did you mean listen_tls?)",
			bad + ":4:1: limits.max_connections: expected an integer, got a string",
		}},
		{"unreadable", missing, 1, []string{"read config: open " + missing + ": no such file or directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out strings.Builder
			if code := CheckFile(tt.path, &out); code != tt.code {
				t.Errorf("exit code %d, want %d", code, tt.code)
			}
			got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
			if strings.Join(got, "\n") != strings.Join(tt.want, "\n") {
				t.Errorf("output:\n%s\nwant:\n%s", out.String(), strings.Join(tt.want, "\n"))
			}
		})
	}
}

// TestCheckFileReportsEveryKind: a misspelled key (found by the schema
// scan), a bad duration (found while decoding) and a missing certificate
// file (found by Validate) come out of one run, each at its line and
// column, and nothing else does.
func TestCheckFileReportsEveryKind(t *testing.T) {
	key := writeFile(t, "key.pem", "k")
	missing := filepath.Join(t.TempDir(), "cert.pem")
	path := writeFile(t, "postern.toml", "[imap]\n"+
		"listen_tsl = ':993'\n"+
		"[limits]\n"+
		"  preauth_timeout = 'a minute'\n"+
		"[[tls.certificates]]\n"+
		"cert_file = '"+missing+"'\n"+
		"key_file = '"+key+"'\n"+
		"[upstream.imap]\nlogin = 'stored'\n[upstream.pop3]\nlogin = 'stored'\n")
	var out strings.Builder
	if code := CheckFile(path, &out); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	want := []string{
		path + ":2:1: imap.listen_tsl: unknown key (did you mean listen_tls?)",
		path + `:4:3: limits.preauth_timeout: invalid duration "a minute"`,
		path + ":6:1: tls.certificates[0].cert_file: cannot read",
	}
	got := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	if len(got) != len(want) {
		t.Fatalf("%d problems, want %d:\n%s", len(got), len(want), out.String())
	}
	for i := range want {
		if !strings.HasPrefix(got[i], want[i]) {
			t.Errorf("problem %d is\n  %s\nwant it to start with\n  %s", i+1, got[i], want[i])
		}
	}
}

// TestParseGoesOnAfterDecodeErrors: problems only go-toml finds (a number
// too large, a key set twice, a bad duration) each drop their key-value and
// decoding goes on, so all of them and Validate's are reported; a dropped
// value's default is not judged again.
func TestParseGoesOnAfterDecodeErrors(t *testing.T) {
	doc := "data_dir = '/a'\ndata_dir = '/b'\n[limits]\nmax_connections = 99999999999999999999\n" +
		"source_delay = '2 seconds'\nmax_bad_commands = 0\n[tls]\ncertificates = [{ cert_file = 5 }]\n" +
		"[upstream.imap]\nlogin = 'stored'\n[upstream.pop3]\nlogin = 'stored'\n"
	lines := parseFails(t, doc)
	want := []string{
		"postern.toml:2:1: data_dir: key data_dir is already defined",
		"postern.toml:4:1: limits.max_connections: decimal number is too large",
		`postern.toml:5:1: limits.source_delay: invalid duration "2 seconds"`,
		"postern.toml:6:1: limits.max_bad_commands: must be between 1 and 100",
		"postern.toml:8:19: tls.certificates[0].cert_file: expected a string, got an integer",
	}
	if len(lines) != len(want) {
		t.Fatalf("got\n  %s\nwant %d problems", strings.Join(lines, "\n  "), len(want))
	}
	for i := range want {
		if !strings.HasPrefix(lines[i], want[i]) {
			t.Errorf("problem %d is\n  %s\nwant it to start with\n  %s", i+1, lines[i], want[i])
		}
	}
}
