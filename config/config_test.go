package config

import (
	"log/slog"
	"testing"
)

func TestSlogLevel(t *testing.T) {
	tests := []struct {
		level string
		want  slog.Level
	}{
		{"debug", slog.LevelDebug},
		{"info", slog.LevelInfo},
		{"warn", slog.LevelWarn},
		{"error", slog.LevelError},
		{"", slog.LevelInfo},
	}
	for _, tt := range tests {
		t.Run(tt.level, func(t *testing.T) {
			if got := (Log{Level: tt.level}).SlogLevel(); got != tt.want {
				t.Errorf("SlogLevel() = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDefaultIsFresh guards the one place defaults live: callers that
// change their copy must not change anyone else's.
func TestDefaultIsFresh(t *testing.T) {
	a, b := Default(), Default()
	a.TLS.Certificates = append(a.TLS.Certificates, Certificate{CertFile: "x"})
	a.Limits.MaxConnections = 1
	if len(b.TLS.Certificates) != 0 || b.Limits.MaxConnections != 10000 {
		t.Errorf("Default() shares state: %+v", b)
	}
}

// TestActiveSyncEnabled: ActiveSync is served exactly when its upstream
// and the DAV listener it lives on are both configured.
func TestActiveSyncEnabled(t *testing.T) {
	for _, tt := range []struct {
		listen, url string
		want        bool
	}{
		{"", "", false},
		{":8443", "", false},
		{"", "http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync", false},
		{":8443", "http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync", true},
	} {
		c := Default()
		c.DAV.Listen, c.Upstream.ActiveSync.URL = tt.listen, tt.url
		if got := c.ActiveSyncEnabled(); got != tt.want {
			t.Errorf("dav.listen %q, upstream.activesync.url %q: ActiveSyncEnabled() = %v", tt.listen, tt.url, got)
		}
	}
}
