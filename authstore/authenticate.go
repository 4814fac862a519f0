package authstore

import (
	"context"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"strings"
)

// Authenticate is the one authentication decision for every protocol
// (DESIGN.md "The decision"). Every credential problem returns an error
// that is ErrUnauthorized (ErrThrottled is one too); a store failure
// returns ErrUnavailable and leaves the failure budget untouched.
func (s *Store) Authenticate(ctx context.Context, a Attempt) (Grant, error) {
	name, nameErr := CanonicalUsername(a.Username)
	t := s.limit.charge(name, a.Source, a.Secret)
	ev := Event{Kind: "login", User: name, Protocol: a.Protocol, Source: addrString(a.Source), Detail: clip(a.Client, 100)}
	if t.Delay > 0 {
		if err := s.opts.Sleep(ctx, t.Delay); err != nil {
			return Grant{}, ErrThrottled
		}
	}
	if t.Throttled {
		ev.Result, ev.Reason = "throttled", "over_budget"
		s.audit.enqueue(ev)
		return Grant{}, ErrThrottled
	}
	if a.Admitted != nil {
		a.Admitted()
	}
	var g Grant
	var reason string
	var err error
	if nameErr != nil {
		reason, err = "invalid_username", ErrUnauthorized
		s.dummyVerify(ctx)
	} else {
		g, reason, err = s.decide(ctx, name, a)
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		s.limit.refund(t)
		ev.Result, ev.Reason = "unavailable", "store"
		s.audit.enqueue(ev)
		return Grant{}, err
	case err != nil:
		s.limit.failure(t)
		ev.Result, ev.Reason = "denied", reason
		s.audit.enqueue(ev)
		return Grant{}, ErrUnauthorized
	}
	s.limit.success(t)
	if g.AppPassID != "" {
		s.usage.note(appPwKey(g.UserID, g.AppPassID), s.opts.Now().UTC(), a.Source, clip(a.Client, 100))
	}
	ev.Result, ev.Reason = "ok", reason
	s.audit.enqueue(ev)
	return g, nil
}

// lookup is what one read transaction learns for a login.
type lookup struct {
	user   *userRecord
	policy Policy
	appPw  *appPwRecord
}

func (s *Store) load(name, secret string) (lookup, error) {
	var l lookup
	err := s.view(func(tx kvTx) error {
		if _, err := getJSON(tx, bPolicy, "mfa", &l.policy); err != nil {
			return err
		}
		rec, err := s.getUser(tx, name)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		l.user = rec
		if pw, ok := NormalizeAppPassword(secret); ok {
			d := hex.EncodeToString(digest(s.pepper, rec.ID, pw))
			if key := tx.Get(bAppPwIndex, d); key != nil {
				var ap appPwRecord
				if _, err := getJSON(tx, bAppPw, string(key), &ap); err != nil {
					return err
				}
				if ap.UserID == rec.ID && subtle.ConstantTimeCompare([]byte(ap.Digest), []byte(d)) == 1 {
					l.appPw = &ap
				}
			}
		}
		return nil
	})
	return l, err
}

// decide returns a grant or ErrUnauthorized with a reason for the audit
// log. Denials that skip the KDF run a dummy one so every failure costs
// about the same time (A9).
func (s *Store) decide(ctx context.Context, name string, a Attempt) (Grant, string, error) {
	if len(a.Secret) > MaxPasswordBytes {
		return Grant{}, "secret_too_long", ErrUnauthorized
	}
	l, err := s.load(name, a.Secret)
	if err != nil {
		return Grant{}, "", err
	}
	now := s.opts.Now()
	if l.appPw != nil {
		reason := ""
		switch {
		case l.user.Disabled:
			reason = "disabled"
		case !l.appPw.Expires.IsZero() && !now.Before(l.appPw.Expires):
			reason = "app_password_expired"
		case !l.appPw.covers(a.Protocol):
			reason = "app_password_scope"
		}
		if reason != "" {
			s.dummyVerify(ctx)
			return Grant{}, reason, ErrUnauthorized
		}
		return Grant{UserID: l.user.ID, Username: name, AppPassID: l.appPw.ID, AppPassName: l.appPw.Name,
			Expires: l.appPw.Expires, Scopes: l.appPw.Scopes}, "app_password", nil
	}
	if l.user == nil || l.user.PasswordHash == "" {
		s.dummyVerify(ctx)
		return Grant{}, "unknown_user", ErrUnauthorized
	}
	ok, err := s.hash.verifyPassword(ctx, l.user.PasswordHash, a.Secret)
	if err != nil {
		return Grant{}, "", errors.Join(ErrUnavailable, err)
	}
	mustUseAppPw := l.user.TOTP.Enabled || (l.policy.MFARequired && !l.policy.inGrace(now))
	switch {
	case !ok:
		return Grant{}, "wrong_secret", ErrUnauthorized
	case l.user.Disabled:
		return Grant{}, "disabled", ErrUnauthorized
	case mustUseAppPw && a.Protocol != Web:
		// The password was right: the security page can warn that a mail
		// app is still using it.
		return Grant{}, "account_password_needs_app_password", ErrUnauthorized
	}
	g := Grant{UserID: l.user.ID, Username: name, Scopes: append([]Protocol(nil), AllScopes...)}
	if l.policy.inGrace(now) && !l.user.TOTP.Enabled {
		g.GraceUntil = l.policy.GraceUntil
	}
	return g, "account_password", nil
}

// dummyVerify spends what a real password check costs.
func (s *Store) dummyVerify(ctx context.Context) {
	s.dummyOnce.Do(func() {
		s.dummyHash, _ = s.hash.hashPassword(context.Background(), s.opts.Rand, "postern-dummy-password")
	})
	s.hash.verifyPassword(ctx, s.dummyHash, "not-the-password")
}

func addrString(a interface {
	IsValid() bool
	String() string
}) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "?")
	if len(s) > n {
		// Cutting at a byte count can split a rune; drop the stub.
		s = strings.ToValidUTF8(s[:n], "")
	}
	return s
}

// FactorResult says which factor matched.
type FactorResult struct {
	Method          string `json:"method"` // "totp", "backup", "admin_code"
	BackupRemaining int    `json:"backup_codes_remaining"`
}

// VerifySecondFactor checks a web sign-in's code. It shares the failure
// budget with Authenticate. A used code or step is recorded in the same
// transaction that accepts it; if that write fails, the code is refused.
func (s *Store) VerifySecondFactor(ctx context.Context, user, code string, a Attempt) (FactorResult, error) {
	name, nameErr := CanonicalUsername(user)
	t := s.limit.charge(name, a.Source, code)
	ev := Event{Kind: "second_factor", User: name, Protocol: Web, Source: addrString(a.Source)}
	if t.Delay > 0 {
		if err := s.opts.Sleep(ctx, t.Delay); err != nil {
			return FactorResult{}, ErrThrottled
		}
	}
	if t.Throttled {
		ev.Result, ev.Reason = "throttled", "over_budget"
		s.audit.enqueue(ev)
		return FactorResult{}, ErrThrottled
	}
	res, err := FactorResult{}, error(ErrUnauthorized)
	if nameErr == nil {
		res, err = s.checkCode(ctx, name, code)
	}
	switch {
	case errors.Is(err, ErrUnavailable):
		s.limit.refund(t)
		return FactorResult{}, err
	case err != nil:
		s.limit.failure(t)
		ev.Result = "denied"
		s.audit.enqueue(ev)
		return FactorResult{}, ErrUnauthorized
	}
	s.limit.success(t)
	ev.Result, ev.Reason = "ok", res.Method
	s.audit.enqueue(ev)
	return res, nil
}

func (s *Store) checkCode(ctx context.Context, name, code string) (FactorResult, error) {
	if c, ok := NormalizeCode(code, 6); ok {
		return s.useTOTP(ctx, name, c)
	}
	if c, ok := NormalizeCode(code, backupCodeLen); ok {
		return s.useBackupCode(ctx, name, c)
	}
	return FactorResult{}, ErrUnauthorized
}

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
		now := s.opts.Now()
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
