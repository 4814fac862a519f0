package authstore

import (
	"bytes"
	"errors"
	"image"
	"image/png"
	"regexp"
	"testing"
	"time"

	"github.com/pquerna/otp"
)

var codeShape = regexp.MustCompile(`^\d{4} \d{4} \d{4}$`)

func TestBeginTOTP(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "Alice")
	enr, err := e.s.BeginTOTP(bg, "alice")
	if err != nil {
		t.Fatal(err)
	}
	t.Run("uri", func(t *testing.T) {
		key, err := otp.NewKeyFromURL(enr.URI)
		if err != nil {
			t.Fatal(err)
		}
		if key.Issuer() != "postern" || key.AccountName() != "alice" || key.Secret() != enr.Secret ||
			key.Period() != 30 || key.Digits() != otp.DigitsSix || key.Algorithm() != otp.AlgorithmSHA1 {
			t.Fatalf("key = %s", key)
		}
		if len(enr.Secret) != 32 { // 160 bits in base32
			t.Fatalf("secret has %d base32 characters, want 32", len(enr.Secret))
		}
	})
	t.Run("png quiet zone", func(t *testing.T) {
		img, err := png.Decode(bytes.NewReader(enr.PNG))
		if err != nil {
			t.Fatal(err)
		}
		checkQuietZone(t, img, 4)
	})
	t.Run("pending, not on", func(t *testing.T) {
		u, _ := e.s.GetUser(bg, "alice")
		if !u.MFA.Pending || u.MFA.Enabled {
			t.Fatalf("MFA = %+v", u.MFA)
		}
		if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); err != nil {
			t.Fatalf("account password refused before confirmation: %v", err)
		}
	})
	t.Run("restart voids the first secret", func(t *testing.T) {
		again, err := e.s.BeginTOTP(bg, "alice")
		if err != nil || again.Secret == enr.Secret {
			t.Fatalf("restart: %v (same secret %v)", err, again.Secret == enr.Secret)
		}
		if _, err := e.s.ConfirmTOTP(bg, "alice", totpCode(t, enr.Secret, e.clock.Now())); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("confirm with the replaced secret: %v", err)
		}
	})
	t.Run("unknown user", func(t *testing.T) {
		if _, err := e.s.BeginTOTP(bg, "nobody"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("err = %v", err)
		}
	})
}

// checkQuietZone measures the module size from the top-left finder pattern
// (7 dark modules wide) and checks the white border around the code.
func checkQuietZone(t *testing.T, img image.Image, modules int) {
	t.Helper()
	b := img.Bounds()
	dark := func(x, y int) bool {
		r, g, bl, _ := img.At(x, y).RGBA()
		return r+g+bl < 3*0x8000
	}
	minX, minY, maxX, maxY := b.Max.X, b.Max.Y, -1, -1
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			if dark(x, y) {
				minX, minY, maxX, maxY = min(minX, x), min(minY, y), max(maxX, x), max(maxY, y)
			}
		}
	}
	if maxX < 0 {
		t.Fatal("image has no dark pixel")
	}
	run := 0
	for x := minX; x < b.Max.X && dark(x, minY); x++ {
		run++
	}
	if run%7 != 0 {
		t.Fatalf("finder pattern run %d px is not 7 modules", run)
	}
	module := run / 7
	border := map[string]int{"left": minX - b.Min.X, "top": minY - b.Min.Y,
		"right": b.Max.X - 1 - maxX, "bottom": b.Max.Y - 1 - maxY}
	for side, px := range border {
		if px < modules*module {
			t.Errorf("%s quiet zone %d px, want ≥ %d modules of %d px", side, px, modules, module)
		}
	}
}

func TestConfirmTOTP(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	if _, err := e.s.ConfirmTOTP(bg, "alice", "123456"); !errors.Is(err, ErrState) {
		t.Fatalf("confirm without enrollment: %v", err)
	}
	enr, err := e.s.BeginTOTP(bg, "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := e.clock.Now()
	right := totpCode(t, enr.Secret, now)
	refused := []struct {
		name string
		code string
	}{
		{"malformed", "12a456"},
		{"wrong length", "12345"},
		{"wrong code", wrongCode(right)},
		{"two steps old", totpCode(t, enr.Secret, now.Add(-60*time.Second))},
		{"two steps ahead", totpCode(t, enr.Secret, now.Add(60*time.Second))},
	}
	for _, tc := range refused {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code == right {
				t.Skip("code collides with the current one")
			}
			if _, err := e.s.ConfirmTOTP(bg, "alice", tc.code); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
			if u, _ := e.s.GetUser(bg, "alice"); u.MFA.Enabled || !u.MFA.Pending {
				t.Fatalf("MFA after a refused code: %+v", u.MFA)
			}
			if revs := e.revs.take(); len(revs) != 0 {
				t.Fatalf("revocations after a refused code: %+v", revs)
			}
		})
	}
	t.Run("right code", func(t *testing.T) {
		codes, err := e.s.ConfirmTOTP(bg, "alice", right[:3]+" "+right[3:])
		if err != nil {
			t.Fatal(err)
		}
		checkCodes(t, codes, 5)
		u, _ := e.s.GetUser(bg, "alice")
		want := MFAStatus{Enabled: true, Source: "self", BackupRemaining: 5}
		if u.MFA != want {
			t.Fatalf("MFA = %+v, want %+v", u.MFA, want)
		}
		assertRevocations(t, e.revs.take(), []Revocation{{Username: "alice", PasswordOnly: true, Cause: CauseMFAEnabled}})
	})
	t.Run("confirming code is spent", func(t *testing.T) {
		if _, err := e.second("alice", right, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("the enrollment code worked again: %v", err)
		}
	})
	t.Run("begin again while on", func(t *testing.T) {
		if _, err := e.s.BeginTOTP(bg, "alice"); !errors.Is(err, ErrState) {
			t.Fatalf("err = %v, want ErrState", err)
		}
	})
}

func TestConfirmTOTPUnderPolicy(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	if err := e.s.SetPolicy(bg, Policy{MFARequired: true}); err != nil {
		t.Fatal(err)
	}
	e.enableTOTP(t, "alice")
	if u, _ := e.s.GetUser(bg, "alice"); u.MFA.Source != "policy" {
		t.Fatalf("Source = %q, want policy", u.MFA.Source)
	}
}

// wrongCode returns a 6-digit code that differs from code.
func wrongCode(code string) string {
	b := []byte(code)
	b[0] = '0' + (b[0]-'0'+1)%10
	return string(b)
}

func checkCodes(t *testing.T, codes []string, n int) {
	t.Helper()
	if len(codes) != n {
		t.Fatalf("%d codes, want %d", len(codes), n)
	}
	seen := map[string]bool{}
	for _, c := range codes {
		if !codeShape.MatchString(c) || seen[c] {
			t.Fatalf("code %q: want 12 distinct digits grouped 4-4-4", c)
		}
		seen[c] = true
	}
}

func TestVerifySecondFactorTOTP(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "nomfa")
	e.addUser(t, "off")
	secret, _ := e.enableTOTP(t, "alice")
	offSecret, _ := e.enableTOTP(t, "off")
	if err := e.s.SetDisabled(bg, "off", true); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		user   string
		code   func(now time.Time) string
		wantOK bool
	}{
		{"previous step", "alice", func(now time.Time) string { return totpCode(t, secret, now.Add(-30*time.Second)) }, true},
		{"current step", "alice", func(now time.Time) string { return totpCode(t, secret, now) }, true},
		{"next step", "alice", func(now time.Time) string { return totpCode(t, secret, now.Add(30*time.Second)) }, true},
		{"two steps ahead", "alice", func(now time.Time) string { return totpCode(t, secret, now.Add(60*time.Second)) }, false},
		{"two steps old", "alice", func(now time.Time) string { return totpCode(t, secret, now.Add(-60*time.Second)) }, false},
		{"malformed", "alice", func(time.Time) string { return "12345x" }, false},
		{"user without factor", "nomfa", func(now time.Time) string { return totpCode(t, secret, now) }, false},
		{"disabled user", "off", func(now time.Time) string { return totpCode(t, offSecret, now) }, false},
		{"unknown user", "nobody", func(now time.Time) string { return totpCode(t, secret, now) }, false},
		{"invalid username", "a\nb", func(now time.Time) string { return totpCode(t, secret, now) }, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			// Move three steps on each time so earlier acceptances do not
			// hide the step this case is about.
			e.clock.Advance(90 * time.Second)
			res, err := e.second(tc.user, tc.code(e.clock.Now()), "192.0.2.1")
			if tc.wantOK {
				if err != nil || res.Method != "totp" || res.BackupRemaining != 5 {
					t.Fatalf("got %+v, %v", res, err)
				}
				return
			}
			if !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("err = %v, want ErrUnauthorized", err)
			}
		})
	}
}
