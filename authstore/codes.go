package authstore

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"
)

// codeSet holds single-use numeric codes as salted argon2id digests: a
// set of backup codes, or one admin-issued code with an expiry.
type codeSet struct {
	Salt    []byte    `json:"salt"`
	Digests []string  `json:"digests"`
	Used    []bool    `json:"used"`
	Expires time.Time `json:"expires,omitzero"`
	// KDF is what the digests were made with, so raising the configured
	// cost later does not void codes users have printed.
	KDF KDFParams `json:"kdf,omitzero"`
}

// params are the set's KDF costs; sets stored before they were recorded
// used the configured ones.
func (c *codeSet) params(configured KDFParams) KDFParams {
	if c.KDF == (KDFParams{}) {
		return configured
	}
	return c.KDF
}

func (c *codeSet) remaining() int {
	if c == nil {
		return 0
	}
	n := 0
	for _, u := range c.Used {
		if !u {
			n++
		}
	}
	return n
}

func (c *codeSet) live(now time.Time) bool {
	return c != nil && c.remaining() > 0 && (c.Expires.IsZero() || now.Before(c.Expires))
}

// newCodeSet draws n codes and their digests; the plain codes are returned
// formatted for display and never stored.
func (s *Store) newCodeSet(ctx context.Context, n int, expires time.Time) (*codeSet, []string, error) {
	set := &codeSet{Salt: make([]byte, 16), Used: make([]bool, n), Expires: expires, KDF: s.opts.KDF}
	if _, err := io.ReadFull(s.opts.Rand, set.Salt); err != nil {
		return nil, nil, err
	}
	var codes []string
	for range n {
		code, err := newNumericCode(s.opts.Rand)
		if err != nil {
			return nil, nil, err
		}
		sum, err := s.hash.key(ctx, []byte(code), set.Salt, set.KDF)
		if err != nil {
			return nil, nil, err
		}
		set.Digests = append(set.Digests, hex.EncodeToString(sum))
		codes = append(codes, FormatGrouped(code, 4))
	}
	return set, codes, nil
}

// match compares a precomputed digest with every unused code in constant
// time and marks the matching one used. It returns false if salt changed
// (a new set replaced the one the digest was computed for).
func (c *codeSet) match(salt, sum []byte, now time.Time) bool {
	if !c.live(now) || subtle.ConstantTimeCompare(c.Salt, salt) != 1 {
		return false
	}
	hit := -1
	for i, d := range c.Digests {
		want, err := hex.DecodeString(d)
		if err != nil {
			continue
		}
		if subtle.ConstantTimeCompare(want, sum) == 1 && !c.Used[i] {
			hit = i
		}
	}
	if hit < 0 {
		return false
	}
	c.Used[hit] = true
	return true
}

// GenerateBackupCodes replaces the user's backup codes with a new set of 5
// and returns them; the old set stops working in the same transaction.
func (s *Store) GenerateBackupCodes(ctx context.Context, user string) ([]string, error) {
	set, codes, err := s.newCodeSet(ctx, backupSetSize, time.Time{})
	if err != nil {
		return nil, err
	}
	_, err = s.modifyUser(ctx, user, Event{Kind: "mfa.backup_codes"}, func(_ kvTx, rec *userRecord) error {
		if !rec.TOTP.Enabled {
			return fmt.Errorf("two-step verification is off: %w", ErrState)
		}
		rec.Backup = set
		return nil
	})
	if err != nil {
		return nil, err
	}
	return codes, nil
}

// DefaultAdminCodeTTL is how long an admin-issued code stays valid.
const DefaultAdminCodeTTL = 72 * time.Hour

// IssueAdminCode gives an admin one single-use code to pass to a locked-out
// user. Only for enabled users whose two-step verification is on.
func (s *Store) IssueAdminCode(ctx context.Context, user string, ttl time.Duration) (string, error) {
	if ttl <= 0 {
		ttl = DefaultAdminCodeTTL
	}
	set, codes, err := s.newCodeSet(ctx, 1, s.opts.Clock.Now().Add(ttl).UTC())
	if err != nil {
		return "", err
	}
	_, err = s.modifyUser(ctx, user, Event{Kind: "mfa.admin_code", Detail: "ttl=" + ttl.String()}, func(_ kvTx, rec *userRecord) error {
		if rec.Disabled || !rec.TOTP.Enabled {
			return fmt.Errorf("only for enabled users with two-step verification on: %w", ErrState)
		}
		rec.AdminCode = set
		return nil
	})
	if err != nil {
		return "", err
	}
	return codes[0], nil
}

// DisableMFA is the admin switching off a user's self-enabled factor. It
// is refused while the organisation requires two-step verification.
func (s *Store) DisableMFA(ctx context.Context, user string) error {
	policy, err := s.Policy(ctx)
	if err != nil {
		return err
	}
	_, err = s.modifyUser(ctx, user, Event{Kind: "mfa.disable"}, func(_ kvTx, rec *userRecord) error {
		if !rec.TOTP.Enabled {
			return fmt.Errorf("two-step verification is already off: %w", ErrState)
		}
		if policy.MFARequired {
			return fmt.Errorf("the organisation requires two-step verification: %w", ErrState)
		}
		clearFactors(rec)
		return nil
	})
	return err
}

// ResetMFA clears the authenticator secret and all codes (lost phone); the
// user sets two-step verification up afresh. Live sessions end.
func (s *Store) ResetMFA(ctx context.Context, user string) error {
	rec, err := s.modifyUser(ctx, user, Event{Kind: "mfa.reset"}, func(_ kvTx, rec *userRecord) error {
		clearFactors(rec)
		return nil
	})
	if err == nil {
		s.opts.OnRevoke(Revocation{Username: rec.Name, Cause: CauseMFAReset})
	}
	return err
}

func clearFactors(rec *userRecord) {
	rec.TOTP = totpState{LastStep: rec.TOTP.LastStep} // keep the step: an old code must never come back
	rec.Backup, rec.AdminCode = nil, nil
}

// useBackupCode runs the KDF outside the write transaction (it is slow),
// then marks the code used inside it; concurrent uses of one code are
// serialised by the transaction, so exactly one wins (A6).
func (s *Store) useBackupCode(ctx context.Context, name, code string) (FactorResult, error) {
	var backup, admin *codeSet
	err := s.view(func(tx kvTx) error {
		rec, err := s.getUser(tx, name)
		if err == nil && !rec.Disabled {
			backup, admin = rec.Backup, rec.AdminCode
		}
		return nil
	})
	if err != nil {
		return FactorResult{}, err
	}
	var backupSalt, adminSalt []byte
	sums := map[string][]byte{}
	for method, set := range map[string]*codeSet{"backup": backup, "admin_code": admin} {
		if set == nil || set.Salt == nil {
			continue
		}
		p := set.params(s.opts.KDF)
		if !p.valid() {
			return FactorResult{}, errors.Join(ErrUnavailable, errBadHash)
		}
		if sums[method], err = s.hash.key(ctx, []byte(code), set.Salt, p); err != nil {
			return FactorResult{}, errors.Join(ErrUnavailable, err)
		}
	}
	if backup != nil {
		backupSalt = backup.Salt
	}
	if admin != nil {
		adminSalt = admin.Salt
	}
	if len(sums) == 0 {
		s.dummyVerify(ctx)
		return FactorResult{}, ErrUnauthorized
	}
	var res FactorResult
	err = s.update(func(tx kvTx) error {
		rec, err := s.getUser(tx, name)
		if err != nil {
			return domainError{ErrUnauthorized}
		}
		now := s.opts.Clock.Now()
		switch {
		case rec.Disabled || !rec.TOTP.Enabled:
			return domainError{ErrUnauthorized}
		case rec.Backup != nil && rec.Backup.match(backupSalt, sums["backup"], now):
			res.Method = "backup"
		case rec.AdminCode != nil && rec.AdminCode.match(adminSalt, sums["admin_code"], now):
			res.Method = "admin_code"
			rec.AdminCode = nil
		default:
			return domainError{ErrUnauthorized}
		}
		res.BackupRemaining = rec.Backup.remaining()
		return putJSON(tx, bUsers, name, rec)
	})
	return res, err
}
