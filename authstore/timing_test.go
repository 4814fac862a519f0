package authstore

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/welch"
)

// TestA9_TimingIndistinguishable: with production KDF costs, every failure
// class takes as long as a plain wrong password (A9: Welch's t
// below 4.5). Samples of all classes are interleaved in random order so
// that load on the machine falls on every class alike. Throttled attempts
// are left out: their answer is delayed on purpose.
func TestA9_TimingIndistinguishable(t *testing.T) {
	if raceEnabled || testing.Short() {
		t.Skip("timing needs a build without the race detector and without -short")
	}
	open := Limits{UserBudget: 1 << 30, PairBudget: 1 << 30, SourceFree: 1 << 30}
	f := newDecisionFixture(t, withKDF(defaultKDF), withLimits(open))
	e := f.e
	e.login("nobody", "warm up the dummy hash", IMAP, "192.0.2.200")
	classes := []struct {
		name, user, secret string
		proto              Protocol
	}{
		{"wrong secret", "alice", "wrong password", IMAP},
		{"unknown user", "nobody", goodPassword, IMAP},
		{"wrong app password", "alice", "abcd efgh ijkl mnop qrst uvwx", IMAP},
		{"disabled user", "off", goodPassword, IMAP},
		{"disabled user's app password", "off", f.offApp, IMAP},
		{"revoked app password", "alice", f.revoked, IMAP},
		{"expired app password", "alice", f.expired, IMAP},
		{"app password out of scope", "alice", f.imapOnly, CalDAV},
		{"account password of an app-password-only user", "mfa", goodPassword, POP3},
	}
	const rounds = 30
	samples := make([][]float64, len(classes))
	for r := range rounds {
		for _, i := range rand.Perm(len(classes)) {
			c := classes[i]
			start := time.Now()
			_, err := e.login(c.user, c.secret, c.proto, fmt.Sprintf("198.51.100.%d", r%250))
			samples[i] = append(samples[i], float64(time.Since(start).Microseconds()))
			if err != ErrUnauthorized {
				t.Fatalf("%s: err = %v", c.name, err)
			}
		}
	}
	for i := 1; i < len(classes); i++ {
		tv := welch.T(samples[i], samples[0])
		t.Logf("%-48s mean %6.0f µs vs %6.0f µs, t = %5.2f", classes[i].name, welch.Mean(samples[i]), welch.Mean(samples[0]), tv)
		if math.Abs(tv) >= 4.5 {
			t.Errorf("%s is distinguishable from a wrong password: t = %.2f", classes[i].name, tv)
		}
	}
}
