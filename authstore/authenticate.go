package authstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/postern-dev/postern/internal/safetext"
)

// Authenticate is the one authentication decision for every protocol
// (DESIGN.md "The decision"). Every credential problem returns an error
// that is ErrUnauthorized (ErrThrottled is one too); a store failure
// returns ErrUnavailable and leaves the failure budget untouched.
//
// A right app password is let in before the rate limiter, whatever the
// budgets and delays say: it carries 112 bits, so checking one (one HMAC
// and one read) gives a guesser nothing, and attackers exhausting a budget
// must not lock the user's mail apps out (A1). Any other secret is charged
// first; over budget it is refused without being checked as anything.
func (s *Store) Authenticate(ctx context.Context, a Attempt) (Grant, error) {
	name, nameErr := CanonicalUsername(a.Username)
	// The client's name is stored and listed: valid UTF-8, bounded.
	a.Client = safetext.Clip(strings.ToValidUTF8(a.Client, "?"), 100)
	ev := Event{Kind: "login", User: name, Protocol: a.Protocol, Source: addrString(a.Source), Detail: a.Client}
	var pre *lookup
	if _, shaped := normalizeAppPassword(a.Secret); shaped && nameErr == nil {
		l, err := s.cachedLoad(name, a.Secret)
		if err != nil {
			ev.Result, ev.Reason = "unavailable", "store"
			s.audit.enqueue(ev)
			return Grant{}, err
		}
		pre = &l
		if l.appPw != nil {
			if g, reason := s.appPasswordDecision(l, name, a.Protocol); reason == "app_password" {
				if a.Admitted != nil {
					a.Admitted()
				}
				s.limit.good(name, a.Source)
				return s.granted(ev, g, reason, a), nil
			}
		}
	}
	var g Grant
	err := s.limited(ctx, name, a.Source, a.Secret, &ev, a.Admitted, func() (string, error) {
		if nameErr != nil {
			s.dummyVerify(ctx)
			return "invalid_username", ErrUnauthorized
		}
		var reason string
		var err error
		g, reason, err = s.decide(ctx, name, a, pre)
		return reason, err
	})
	if err != nil {
		return Grant{}, err
	}
	return s.granted(ev, g, ev.Reason, a), nil
}

// limited is the one charge, delay and settle path of every check that
// spends a guess (Authenticate's, VerifySecondFactor's): it charges the
// attempt, waits out its delay, refuses it over budget, and otherwise runs
// check and settles the charge by its outcome. A store failure is refunded
// and answered ErrUnavailable; any other failure stays charged and is
// answered ErrUnauthorized. Every outcome but success is audited here, with
// ev's other fields; on success ev.Reason holds check's reason and the
// caller audits (it may add to the event). admitted, when set, runs once
// the attempt is past the limiter.
func (s *Store) limited(ctx context.Context, name string, src netip.Addr, secret string, ev *Event,
	admitted func(), check func() (reason string, err error)) error {
	t := s.limit.charge(name, src, secret)
	if t.Delay > 0 {
		if err := s.opts.Sleep(ctx, t.Delay); err != nil {
			return ErrThrottled
		}
	}
	if t.Throttled {
		ev.Result, ev.Reason = "throttled", "over_budget"
		s.audit.enqueue(*ev)
		return ErrThrottled
	}
	if admitted != nil {
		admitted()
	}
	reason, err := check()
	switch {
	case errors.Is(err, ErrUnavailable):
		s.limit.refund(t)
		ev.Result, ev.Reason = "unavailable", "store"
		s.audit.enqueue(*ev)
		return err
	case err != nil:
		s.limit.failure(t)
		ev.Result, ev.Reason = "denied", reason
		s.audit.enqueue(*ev)
		return ErrUnauthorized
	}
	s.limit.success(t)
	ev.Reason = reason
	return nil
}

// granted notes an app password's use and audits the login, or, when the
// front-end logs in upstream next, leaves the event to Grant.Settle.
func (s *Store) granted(ev Event, g Grant, reason string, a Attempt) Grant {
	if g.AppPassID != "" {
		s.usage.note(appPwKey(g.UserID, g.AppPassID), s.opts.Clock.Now().UTC(), a.Source, a.Client)
	}
	if a.Renewal {
		return g
	}
	ev.Result, ev.Reason = "ok", reason
	if a.Upstream {
		g.pending = &pendingLogin{audit: s.audit, ev: ev}
		return g
	}
	s.audit.enqueue(ev)
	return g
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
		if pw, ok := normalizeAppPassword(secret); ok {
			d := s.appPwDigest(rec.ID, pw)
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

// appPasswordDecision judges a matching app password: a grant and
// "app_password", or the reason it is refused. It reads the record's own
// revocation and expiry, not only the index that found it: one missed
// index delete must never let a revoked app password in (P10).
func (s *Store) appPasswordDecision(l lookup, name string, p Protocol) (Grant, string) {
	now := s.opts.Clock.Now()
	switch {
	case !l.appPw.Revoked.IsZero():
		return Grant{}, "app_password_revoked"
	case l.user.Disabled:
		return Grant{}, "disabled"
	case !l.appPw.Expires.IsZero() && !now.Before(l.appPw.Expires):
		return Grant{}, "app_password_expired"
	case !l.appPw.covers(p):
		return Grant{}, "app_password_scope"
	}
	return Grant{UserID: l.user.ID, Username: name, AppPassID: l.appPw.ID, AppPassName: l.appPw.Name,
		Expires: l.appPw.Expires, Scopes: slices.Clone(l.appPw.Scopes)}, "app_password"
}

// decide returns a grant or ErrUnauthorized with a reason for the audit
// log; pre is what Authenticate already read, if anything. Denials that
// skip the KDF run a dummy one so every failure costs about the same time
// (A9). An app-password-shaped secret that matches no app password is
// checked as an account password: it gets here only within the budgets.
func (s *Store) decide(ctx context.Context, name string, a Attempt, pre *lookup) (Grant, string, error) {
	if len(a.Secret) > maxPasswordBytes {
		return Grant{}, "secret_too_long", ErrUnauthorized
	}
	var l lookup
	if pre != nil {
		l = *pre
	} else {
		var err error
		if l, err = s.load(name, a.Secret); err != nil {
			return Grant{}, "", err
		}
	}
	now := s.opts.Clock.Now()
	if l.appPw != nil {
		g, reason := s.appPasswordDecision(l, name, a.Protocol)
		if reason != "app_password" {
			s.dummyVerify(ctx)
			return Grant{}, reason, ErrUnauthorized
		}
		return g, reason, nil
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
	ev := Event{Kind: "second_factor", User: name, Protocol: Web, Source: addrString(a.Source)}
	var res FactorResult
	err := s.limited(ctx, name, a.Source, code, &ev, a.Admitted, func() (string, error) {
		if nameErr != nil {
			return "", ErrUnauthorized
		}
		var err error
		res, err = s.checkCode(ctx, name, code)
		return res.Method, err
	})
	if err != nil {
		return FactorResult{}, err
	}
	ev.Result = "ok"
	s.audit.enqueue(ev)
	return res, nil
}

func (s *Store) checkCode(ctx context.Context, name, code string) (FactorResult, error) {
	if c, ok := normalizeCode(code, 6); ok {
		return s.useTOTP(ctx, name, c)
	}
	if c, ok := normalizeCode(code, backupCodeLen); ok {
		return s.useBackupCode(ctx, name, c)
	}
	return FactorResult{}, ErrUnauthorized
}
