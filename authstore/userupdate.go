package authstore

import (
	"context"
	"fmt"
	"strings"

	"github.com/postern-dev/postern/internal/safetext"
)

// UserUpdate changes parts of an account; nil fields stay as they are.
type UserUpdate struct {
	Display  *string
	Email    *string
	Role     *Role
	Disabled *bool
}

// UpdateUser applies u in one transaction with one audit event naming the
// fields changed. Disabling ends the user's live sessions.
func (s *Store) UpdateUser(ctx context.Context, name string, u UserUpdate) (User, error) {
	if err := checkProfile(u.Display, u.Email, u.Role); err != nil {
		return User{}, err
	}
	var changed []string
	if u.Display != nil {
		changed = append(changed, "display")
	}
	if u.Email != nil {
		changed = append(changed, "email")
	}
	if u.Role != nil {
		changed = append(changed, "role="+string(*u.Role))
	}
	if u.Disabled != nil {
		changed = append(changed, fmt.Sprintf("disabled=%t", *u.Disabled))
	}
	rec, err := s.modifyUser(ctx, name, Event{Kind: "user.update", Detail: strings.Join(changed, " ")}, func(_ kvTx, rec *userRecord) error {
		if u.Display != nil {
			rec.Display = *u.Display
		}
		if u.Email != nil {
			rec.Email = *u.Email
		}
		if u.Role != nil {
			rec.Role = *u.Role
		}
		if u.Disabled != nil {
			rec.Disabled = *u.Disabled
		}
		return nil
	})
	if err != nil {
		return User{}, err
	}
	if u.Disabled != nil && *u.Disabled {
		s.opts.OnRevoke(Revocation{Username: rec.Name, Cause: CauseDisabled})
	}
	return rec.public(), nil
}

// checkProfile is the one check of what an account shows and is, for
// CreateUser and UpdateUser alike (W8): nil fields are not being set.
// Display names and emails are shown on pages, in the CLI and in logs, so
// they hold no control, bidirectional control or line separator.
func checkProfile(display, email *string, role *Role) error {
	if display != nil && (len(*display) > 200 || !safetext.Valid(*display)) {
		return fmt.Errorf("%w: display name must be at most 200 bytes of printable characters", ErrInvalid)
	}
	if email != nil && (len(*email) > 254 || !safetext.Valid(*email)) {
		return fmt.Errorf("%w: email must be at most 254 bytes of printable characters", ErrInvalid)
	}
	if role != nil && *role != RoleUser && *role != RoleAdmin {
		return fmt.Errorf("%w: role must be user or admin", ErrInvalid)
	}
	return nil
}
