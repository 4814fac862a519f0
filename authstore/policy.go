package authstore

import (
	"context"
	"time"
)

// Policy is the organisation's two-step rule.
type Policy struct {
	MFARequired bool      `json:"mfa_required"`
	GraceUntil  time.Time `json:"grace_until,omitzero"` // account passwords still work over mail until then
}

// inGrace reports whether not-yet-enrolled users may still use their
// account password over mail protocols.
func (p Policy) inGrace(now time.Time) bool {
	return p.MFARequired && now.Before(p.GraceUntil)
}

// Policy reads the organisation's policy.
func (s *Store) Policy(ctx context.Context) (Policy, error) {
	var p Policy
	err := s.view(func(tx kvTx) error {
		_, err := getJSON(tx, bPolicy, "mfa", &p)
		return err
	})
	return p, err
}

// SetPolicy changes the organisation's policy. Turning enforcement on
// without a grace period ends every account-password session.
func (s *Store) SetPolicy(ctx context.Context, p Policy) error {
	p.GraceUntil = p.GraceUntil.UTC()
	if !p.MFARequired {
		p.GraceUntil = time.Time{}
	}
	detail := "mfa_required=false"
	if p.MFARequired {
		detail = "mfa_required=true grace_until=" + p.GraceUntil.Format(time.RFC3339)
	}
	err := s.update(func(tx kvTx) error {
		if err := putJSON(tx, bPolicy, "mfa", p); err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "policy.mfa", Detail: detail})
	})
	if err != nil {
		return err
	}
	s.opts.OnPolicy(p)
	if p.MFARequired && !p.inGrace(s.opts.Clock.Now()) {
		s.opts.OnRevoke(Revocation{PasswordOnly: true, Cause: CauseMFARequired})
	}
	return nil
}
