package authstore

import (
	"bytes"
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"image"
	"image/color"
	"image/png"
	"time"

	"github.com/boombuler/barcode/qr"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
)

const totpPeriod = 30

// totpState is a user's authenticator factor. Secrets are sealed.
type totpState struct {
	Enabled  bool   `json:"enabled,omitempty"`
	Source   string `json:"source,omitempty"` // "self" or "policy"
	Sealed   []byte `json:"sealed,omitempty"`
	Pending  []byte `json:"pending,omitempty"` // enrollment begun, not confirmed
	LastStep int64  `json:"last_step,omitempty"`
}

// Enrollment is what a user needs to add postern to an authenticator app.
type Enrollment struct {
	Secret string `json:"secret"` // base32, shown as text too
	URI    string `json:"uri"`    // otpauth://
	PNG    []byte `json:"-"`      // QR code with a quiet zone
}

var totpOpts = totp.ValidateOpts{Period: totpPeriod, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

// BeginTOTP starts (or restarts) enrollment. The factor is on only after
// ConfirmTOTP with a first code.
func (s *Store) BeginTOTP(ctx context.Context, user string) (Enrollment, error) {
	var enr Enrollment
	_, err := s.modifyUser(ctx, user, Event{Kind: "mfa.enroll_begin"}, func(_ kvTx, rec *userRecord) error {
		if rec.TOTP.Enabled {
			return fmt.Errorf("two-step verification is already on: %w", ErrState)
		}
		key, err := totp.Generate(totp.GenerateOpts{Issuer: s.opts.Issuer, AccountName: rec.Name,
			SecretSize: 20, Algorithm: otp.AlgorithmSHA1, Digits: otp.DigitsSix, Period: totpPeriod, Rand: s.opts.Rand})
		if err != nil {
			return err
		}
		rec.TOTP.Pending, err = s.seal.seal(s.opts.Rand, rec.ID, "totp-pending", []byte(key.Secret()))
		if err != nil {
			return err
		}
		enr = Enrollment{Secret: key.Secret(), URI: key.URL()}
		enr.PNG, err = qrPNG(enr.URI)
		return err
	})
	return enr, err
}

// qrPNG renders the QR code with the 4-module quiet zone scanners need.
func qrPNG(content string) ([]byte, error) {
	code, err := qr.Encode(content, qr.M, qr.Auto)
	if err != nil {
		return nil, err
	}
	const scale, quiet = 6, 4
	n := code.Bounds().Dx()
	size := (n + 2*quiet) * scale
	img := image.NewGray(image.Rect(0, 0, size, size))
	for y := range size {
		for x := range size {
			mx, my := x/scale-quiet, y/scale-quiet
			c := color.Gray{Y: 255}
			if mx >= 0 && my >= 0 && mx < n && my < n && code.At(mx, my) == color.Black {
				c = color.Gray{Y: 0}
			}
			img.SetGray(x, y, c)
		}
	}
	var buf bytes.Buffer
	err = png.Encode(&buf, img)
	return buf.Bytes(), err
}

// ConfirmTOTP turns the factor on with a first valid code and returns the
// first set of backup codes.
func (s *Store) ConfirmTOTP(ctx context.Context, user, code string) ([]string, error) {
	code, ok := normalizeCode(code, 6)
	if !ok {
		return nil, ErrUnauthorized
	}
	set, codes, err := s.newCodeSet(ctx, backupSetSize, time.Time{})
	if err != nil {
		return nil, err
	}
	policy, err := s.Policy(ctx)
	if err != nil {
		return nil, err
	}
	rec, err := s.modifyUser(ctx, user, Event{Kind: "mfa.enable"}, func(_ kvTx, rec *userRecord) error {
		if rec.TOTP.Enabled || rec.TOTP.Pending == nil {
			return fmt.Errorf("no enrollment in progress: %w", ErrState)
		}
		secret, err := s.seal.open(rec.ID, "totp-pending", rec.TOTP.Pending)
		if err != nil {
			return domainError{ErrUnauthorized}
		}
		step, ok := matchTOTP(string(secret), code, s.opts.Clock.Now(), 0)
		if !ok {
			return domainError{ErrUnauthorized}
		}
		sealed, err := s.seal.seal(s.opts.Rand, rec.ID, "totp", secret)
		if err != nil {
			return err
		}
		src := "self"
		if policy.MFARequired {
			src = "policy"
		}
		rec.TOTP = totpState{Enabled: true, Source: src, Sealed: sealed, LastStep: step}
		rec.Backup = set
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.opts.OnRevoke(Revocation{Username: rec.Name, PasswordOnly: true, Cause: CauseMFAEnabled})
	return codes, nil
}

// matchTOTP finds the step (±1 around now) whose code equals code and is
// later than lastStep (A4: a code is accepted once).
func matchTOTP(secret, code string, now time.Time, lastStep int64) (int64, bool) {
	cur := now.Unix() / totpPeriod
	for step := cur - 1; step <= cur+1; step++ {
		if step <= lastStep {
			continue
		}
		want, err := totp.GenerateCodeCustom(secret, time.Unix(step*totpPeriod, 0), totpOpts)
		if err != nil {
			return 0, false
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			return step, true
		}
	}
	return 0, false
}

// verifyTOTPTx checks a code and records its step in the same write
// transaction, before anyone is told it was right. A secret that cannot be
// unsealed denies (A13): it never means "no second factor".
func (s *Store) verifyTOTPTx(rec *userRecord, code string) bool {
	if !rec.TOTP.Enabled {
		return false
	}
	secret, err := s.seal.open(rec.ID, "totp", rec.TOTP.Sealed)
	if err != nil {
		s.opts.Logger.Error("authenticator secret cannot be unsealed; denying", "user", rec.Name)
		return false
	}
	step, ok := matchTOTP(string(secret), code, s.opts.Clock.Now(), rec.TOTP.LastStep)
	if ok {
		rec.TOTP.LastStep = step
	}
	return ok
}

// useTOTP accepts a web sign-in's TOTP code once (A4): the step is
// recorded in the transaction that accepts it.
func (s *Store) useTOTP(ctx context.Context, name, code string) (FactorResult, error) {
	var res FactorResult
	err := s.update(func(tx kvTx) error {
		rec, err := s.getUser(tx, name)
		if errors.Is(err, ErrNotFound) {
			return domainError{ErrUnauthorized}
		}
		if err != nil {
			return err
		}
		if rec.Disabled || !s.verifyTOTPTx(rec, code) {
			return domainError{ErrUnauthorized}
		}
		res = FactorResult{Method: "totp", BackupRemaining: rec.Backup.remaining()}
		return putJSON(tx, bUsers, name, rec)
	})
	return res, err
}
