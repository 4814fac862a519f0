package authstore

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
)

// Errors that are answers to bad requests, not store failures.
var (
	ErrNotFound = domainError{errors.New("not found")}
	ErrExists   = domainError{errors.New("already exists")}
	ErrInvalid  = domainError{errors.New("invalid")}
	ErrState    = domainError{errors.New("not allowed in the current state")}
)

// Role of a user.
type Role string

const (
	RoleUser  Role = "user"
	RoleAdmin Role = "admin"
)

// userRecord is what the users bucket holds, keyed by canonical name.
type userRecord struct {
	ID           string    `json:"id"`
	Name         string    `json:"name"`
	Display      string    `json:"display,omitempty"`
	Email        string    `json:"email,omitempty"`
	Role         Role      `json:"role"`
	Disabled     bool      `json:"disabled,omitempty"`
	PasswordHash string    `json:"password_hash,omitempty"`
	Created      time.Time `json:"created"`
	Updated      time.Time `json:"updated"`
	TOTP         totpState `json:"totp"`
	Backup       *codeSet  `json:"backup,omitempty"`
	AdminCode    *codeSet  `json:"admin_code,omitempty"`
	Upstream     []byte    `json:"upstream,omitempty"` // sealed upstream password
}

// User is the public view of an account: never a secret or digest.
type User struct {
	ID          string `json:"id"`
	Name        string `json:"name"`
	Display     string `json:"display,omitempty"`
	Email       string `json:"email,omitempty"`
	Role        Role   `json:"role"`
	Disabled    bool   `json:"disabled"`
	HasPassword bool   `json:"has_password"`
	// HasUpstreamPassword says whether a stored upstream password is set
	// (login = "stored"); the password itself is never shown.
	HasUpstreamPassword bool      `json:"has_upstream_password"`
	MFA                 MFAStatus `json:"mfa"`
	Created             time.Time `json:"created"`
	Updated             time.Time `json:"updated"`
}

// MFAStatus describes a user's second factor without revealing it.
type MFAStatus struct {
	Enabled         bool   `json:"enabled"`
	Pending         bool   `json:"pending,omitempty"` // enrollment begun, not confirmed
	Source          string `json:"source,omitempty"`  // "self" or "policy"
	BackupRemaining int    `json:"backup_codes_remaining"`
}

func (r *userRecord) public() User {
	return User{ID: r.ID, Name: r.Name, Display: r.Display, Email: r.Email, Role: r.Role,
		Disabled: r.Disabled, HasPassword: r.PasswordHash != "", HasUpstreamPassword: r.Upstream != nil,
		Created: r.Created, Updated: r.Updated,
		MFA: MFAStatus{Enabled: r.TOTP.Enabled, Pending: r.TOTP.Pending != nil, Source: r.TOTP.Source,
			BackupRemaining: r.Backup.remaining()}}
}

// NewUser is the input of CreateUser.
type NewUser struct {
	Name     string
	Display  string
	Email    string
	Role     Role
	Password string // optional; may be set later
}

func newID(rnd io.Reader) (string, error) {
	b := make([]byte, 8)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", err
	}
	return hex.EncodeToString(b), nil
}

func checkPassword(pw string) error {
	if len(pw) < minPasswordBytes || len(pw) > maxPasswordBytes {
		return fmt.Errorf("%w: password must be %d to %d bytes", ErrInvalid, minPasswordBytes, maxPasswordBytes)
	}
	return nil
}

// CreateUser adds an account.
func (s *Store) CreateUser(ctx context.Context, in NewUser) (User, error) {
	name, err := CanonicalUsername(in.Name)
	if err != nil {
		return User{}, fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	if in.Role == "" {
		in.Role = RoleUser
	}
	if err := checkProfile(&in.Display, &in.Email, &in.Role); err != nil {
		return User{}, err
	}
	hash := ""
	if in.Password != "" {
		if err := checkPassword(in.Password); err != nil {
			return User{}, err
		}
		if hash, err = s.hash.hashPassword(ctx, s.opts.Rand, in.Password); err != nil {
			return User{}, err
		}
	}
	id, err := newID(s.opts.Rand)
	if err != nil {
		return User{}, err
	}
	now := s.opts.Clock.Now().UTC()
	rec := &userRecord{ID: id, Name: name, Display: in.Display, Email: in.Email, Role: in.Role,
		PasswordHash: hash, Created: now, Updated: now}
	err = s.update(func(tx kvTx) error {
		if tx.Get(bUsers, name) != nil {
			return fmt.Errorf("user %s: %w", name, ErrExists)
		}
		if err := putJSON(tx, bUsers, name, rec); err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "user.create", User: name, Detail: string(in.Role)})
	})
	if err != nil {
		return User{}, err
	}
	return rec.public(), nil
}

func (s *Store) getUser(tx kvTx, name string) (*userRecord, error) {
	var rec userRecord
	ok, err := getJSON(tx, bUsers, name, &rec)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, fmt.Errorf("user %s: %w", name, ErrNotFound)
	}
	if err := rec.check(); err != nil {
		return nil, fmt.Errorf("decode %s/%s: %w", bUsers, name, err)
	}
	return &rec, nil
}

// check refuses a record whose parts disagree (a damaged or hand-edited
// file): a code set needs one used-flag per digest, or marking a code
// used would index past the flags.
func (r *userRecord) check() error {
	for _, c := range []*codeSet{r.Backup, r.AdminCode} {
		if c != nil && len(c.Used) != len(c.Digests) {
			return errors.New("code set has digests and used-flags of different lengths")
		}
	}
	return nil
}

// GetUser returns one account.
func (s *Store) GetUser(ctx context.Context, name string) (User, error) {
	cname, err := CanonicalUsername(name)
	if err != nil {
		return User{}, fmt.Errorf("user: %w", ErrNotFound)
	}
	var u User
	err = s.view(func(tx kvTx) error {
		rec, err := s.getUser(tx, cname)
		if err == nil {
			u = rec.public()
		}
		return err
	})
	return u, err
}

// ListUsers returns every account, sorted by name.
func (s *Store) ListUsers(ctx context.Context) ([]User, error) {
	var out []User
	err := s.view(func(tx kvTx) error {
		return tx.Scan(bUsers, "", func(_ string, v []byte) error {
			var rec userRecord
			if _, err := getJSONBytes(v, &rec); err != nil {
				return err
			}
			out = append(out, rec.public())
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, err
}

// modifyUser loads, changes and stores one user in a transaction, with
// one audit event. fn may return a domain error to abort.
func (s *Store) modifyUser(ctx context.Context, name string, ev Event, fn func(tx kvTx, rec *userRecord) error) (*userRecord, error) {
	cname, err := CanonicalUsername(name)
	if err != nil {
		return nil, fmt.Errorf("user: %w", ErrNotFound)
	}
	var out *userRecord
	err = s.update(func(tx kvTx) error {
		rec, err := s.getUser(tx, cname)
		if err != nil {
			return err
		}
		if err := fn(tx, rec); err != nil {
			return err
		}
		rec.Updated = s.opts.Clock.Now().UTC()
		if err := putJSON(tx, bUsers, cname, rec); err != nil {
			return err
		}
		ev.User = cname
		out = rec
		return s.audit.appendTx(tx, ctx, ev)
	})
	return out, err
}

// SetDisabled disables or enables an account. Disabling ends its sessions.
func (s *Store) SetDisabled(ctx context.Context, name string, disabled bool) error {
	kind := "user.enable"
	if disabled {
		kind = "user.disable"
	}
	rec, err := s.modifyUser(ctx, name, Event{Kind: kind}, func(_ kvTx, rec *userRecord) error {
		rec.Disabled = disabled
		return nil
	})
	if err == nil && disabled {
		s.opts.OnRevoke(Revocation{Username: rec.Name, Cause: CauseDisabled})
	}
	return err
}

// setRole changes a user's role.
func (s *Store) setRole(ctx context.Context, name string, role Role) error {
	if err := checkProfile(nil, nil, &role); err != nil {
		return err
	}
	_, err := s.modifyUser(ctx, name, Event{Kind: "user.role", Detail: string(role)}, func(_ kvTx, rec *userRecord) error {
		rec.Role = role
		return nil
	})
	return err
}

// SetPassword sets the account password. With revokeAppPasswords every app
// password of the user is revoked in the same transaction. Either way the
// user's live sessions end: a password change is the user's "sign out
// everywhere" (sessions on app passwords only when they are revoked).
func (s *Store) SetPassword(ctx context.Context, name, password string, revokeAppPasswords bool) error {
	if err := checkPassword(password); err != nil {
		return err
	}
	hash, err := s.hash.hashPassword(ctx, s.opts.Rand, password)
	if err != nil {
		return err
	}
	rec, err := s.modifyUser(ctx, name, Event{Kind: "user.password", Detail: fmt.Sprintf("revoke_app_passwords=%t", revokeAppPasswords)},
		func(tx kvTx, rec *userRecord) error {
			rec.PasswordHash = hash
			if revokeAppPasswords {
				return s.revokeAllTx(tx, rec.ID)
			}
			return nil
		})
	if err != nil {
		return err
	}
	s.limit.forgetUser(rec.Name)
	cause := CausePasswordChanged
	if revokeAppPasswords {
		cause = CauseAppPasswordsRevoked
	}
	s.opts.OnRevoke(Revocation{Username: rec.Name, PasswordOnly: !revokeAppPasswords, Cause: cause})
	return nil
}

// DeleteUser removes an account and all its credentials, the API tokens
// that act as it included, in one transaction.
func (s *Store) DeleteUser(ctx context.Context, name string) error {
	cname, err := CanonicalUsername(name)
	if err != nil {
		return fmt.Errorf("user: %w", ErrNotFound)
	}
	err = s.update(func(tx kvTx) error {
		rec, err := s.getUser(tx, cname)
		if err != nil {
			return err
		}
		if err := s.deleteAppPasswordsTx(tx, rec.ID); err != nil {
			return err
		}
		if err := s.deleteUserTokensTx(ctx, tx, cname); err != nil {
			return err
		}
		if err := tx.Delete(bUsers, cname); err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "user.delete", User: cname})
	})
	if err == nil {
		s.opts.OnRevoke(Revocation{Username: cname, Cause: CauseDeleted})
	}
	return err
}

// SetUpstreamPassword stores (sealed) the password postern uses to log in
// upstream as this user when no master credential is configured. It must
// be something an upstream login can carry: 1 to maxPasswordBytes bytes
// without CR, LF or NUL (IMAP, POP3 and SASL PLAIN cannot frame those).
func (s *Store) SetUpstreamPassword(ctx context.Context, name, password string) error {
	if password == "" || len(password) > maxPasswordBytes || safetext.BreaksCommand(password) {
		return fmt.Errorf("%w: upstream password must be 1 to %d bytes without CR, LF or NUL", ErrInvalid, maxPasswordBytes)
	}
	_, err := s.modifyUser(ctx, name, Event{Kind: "user.upstream_password"}, func(_ kvTx, rec *userRecord) error {
		sealed, err := s.seal.seal(s.opts.Rand, rec.ID, "upstream", []byte(password))
		rec.Upstream = sealed
		return err
	})
	return err
}

// ClearUpstreamPassword forgets the stored upstream password; logins that
// need it are then refused as "try again later" until one is set.
func (s *Store) ClearUpstreamPassword(ctx context.Context, name string) error {
	_, err := s.modifyUser(ctx, name, Event{Kind: "user.upstream_password", Detail: "cleared"}, func(_ kvTx, rec *userRecord) error {
		rec.Upstream = nil
		return nil
	})
	return err
}

// UpstreamPassword opens the stored upstream password of a user.
func (s *Store) UpstreamPassword(ctx context.Context, name string) (string, error) {
	cname, err := CanonicalUsername(name)
	if err != nil {
		return "", fmt.Errorf("user: %w", ErrNotFound)
	}
	var pw []byte
	err = s.view(func(tx kvTx) error {
		rec, err := s.getUser(tx, cname)
		if err != nil {
			return err
		}
		if rec.Upstream == nil {
			return fmt.Errorf("upstream password of %s: %w", name, ErrNotFound)
		}
		pw, err = s.seal.open(rec.ID, "upstream", rec.Upstream)
		if err != nil {
			return domainError{err}
		}
		return nil
	})
	return string(pw), err
}
