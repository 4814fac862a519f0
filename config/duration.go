package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Duration is a time.Duration written in TOML as a string: anything
// time.ParseDuration accepts ("30s", "31m", "1h30m"), or whole days ("90d"),
// because app-password expiries and code lifetimes are thought of in days.
type Duration struct{ time.Duration }

// maxDays keeps n*24h inside time.Duration's range (about 292 years).
const maxDays = 100000

// ParseDuration parses the forms Duration accepts.
func ParseDuration(s string) (Duration, error) {
	if days, ok := strings.CutSuffix(s, "d"); ok && days != "" && !strings.HasPrefix(days, "+") {
		n, err := strconv.Atoi(days)
		if err != nil || n < 0 || n > maxDays {
			return Duration{}, fmt.Errorf("invalid duration %q: days must be a whole number from 0 to %d", s, maxDays)
		}
		return Duration{time.Duration(n) * 24 * time.Hour}, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return Duration{}, fmt.Errorf("invalid duration %q: use a number and a unit, as in \"30s\", \"31m\", \"72h\" or \"90d\"", s)
	}
	return Duration{d}, nil
}

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Duration) UnmarshalText(text []byte) error {
	v, err := ParseDuration(string(text))
	if err != nil {
		return err
	}
	*d = v
	return nil
}

// MarshalText implements encoding.TextMarshaler; the result parses back to
// the same value.
func (d Duration) MarshalText() ([]byte, error) {
	return []byte(d.String()), nil
}

// String is time.Duration's form without the trailing zero units, so that
// 72h prints as "72h" rather than "72h0m0s".
func (d Duration) String() string {
	s := d.Duration.String()
	if strings.HasSuffix(s, "m0s") {
		s = s[:len(s)-2]
	}
	if strings.HasSuffix(s, "h0m") {
		s = s[:len(s)-2]
	}
	return s
}
