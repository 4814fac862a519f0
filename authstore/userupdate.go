package authstore

import (
	"context"
	"fmt"
	"strings"
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
	var changed []string
	if u.Display != nil {
		if len(*u.Display) > 200 || strings.ContainsFunc(*u.Display, isControl) {
			return User{}, fmt.Errorf("%w: display name must be at most 200 printable characters", ErrInvalid)
		}
		changed = append(changed, "display")
	}
	if u.Email != nil {
		if len(*u.Email) > 254 || strings.ContainsFunc(*u.Email, isControl) {
			return User{}, fmt.Errorf("%w: email must be at most 254 printable characters", ErrInvalid)
		}
		changed = append(changed, "email")
	}
	if u.Role != nil {
		if *u.Role != RoleUser && *u.Role != RoleAdmin {
			return User{}, fmt.Errorf("%w: role must be user or admin", ErrInvalid)
		}
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
