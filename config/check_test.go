package config

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckFile(t *testing.T) {
	good := writeFile(t, "good.toml", storedLogins)
	bad := writeFile(t, "bad.toml", "[imap]\nlisten_tsl = ':993'\n[limits]\nmax_connections = 'many'\n")
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
