package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseDuration(t *testing.T) {
	tests := []struct {
		in      string
		want    time.Duration
		wantErr string
	}{
		{in: "30s", want: 30 * time.Second},
		{in: "31m", want: 31 * time.Minute},
		{in: "72h", want: 72 * time.Hour},
		{in: "1h30m", want: 90 * time.Minute},
		{in: "500ms", want: 500 * time.Millisecond},
		{in: "90d", want: 90 * 24 * time.Hour},
		{in: "0d", want: 0},
		{in: "-5s", want: -5 * time.Second}, // Validate refuses it, with the key
		{in: "", wantErr: "use a number and a unit"},
		{in: "5", wantErr: "use a number and a unit"},
		{in: "d", wantErr: "use a number and a unit"},
		{in: "2 seconds", wantErr: "use a number and a unit"},
		{in: "1d12h", wantErr: "use a number and a unit"},
		{in: "+1d", wantErr: "use a number and a unit"},
		{in: "1.5d", wantErr: "days must be a whole number"},
		{in: "-1d", wantErr: "days must be a whole number"},
		{in: "100001d", wantErr: "days must be a whole number"},
		{in: "99999999999999999999d", wantErr: "days must be a whole number"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseDuration(tt.in)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("ParseDuration(%q) = %v, %v; want error containing %q", tt.in, got, err, tt.wantErr)
				}
				return
			}
			if err != nil || got.Duration != tt.want {
				t.Fatalf("ParseDuration(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
			}
			// MarshalText must give back text that parses to the same value.
			text, err := got.MarshalText()
			if err != nil {
				t.Fatal(err)
			}
			var back Duration
			if err := back.UnmarshalText(text); err != nil || back != got {
				t.Errorf("round trip through %q = %v, %v", text, back, err)
			}
		})
	}
}

func TestDurationString(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{72 * time.Hour, "72h"},
		{31 * time.Minute, "31m"},
		{90 * time.Second, "1m30s"},
		{time.Hour + time.Second, "1h0m1s"},
		{90 * time.Minute, "1h30m"},
		{100 * time.Millisecond, "100ms"},
		{0, "0s"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			if got := (Duration{tt.d}).String(); got != tt.want {
				t.Errorf("String() = %q, want %q", got, tt.want)
			}
		})
	}
}
