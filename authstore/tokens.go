package authstore

import (
	"context"
	"crypto/subtle"
	"encoding/base32"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
)

// tokenPrefix starts every API token, so a leaked one is recognisable
// (secret scanners) and never mistaken for a password.
const tokenPrefix = "pst_"

// tokenEncoding spells the 32 random bytes of a token: lowercase base32
// without padding, 52 characters.
var tokenEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

const tokenLen = len(tokenPrefix) + 52

// Token is an API token as shown to admins: never the secret or its digest.
type Token struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Role    Role      `json:"role"`
	User    string    `json:"user,omitempty"` // the user a role-user token acts as
	Created time.Time `json:"created"`
	Expires time.Time `json:"expires_at,omitzero"`
}

// tokenRecord is what the tokens bucket holds under "d/<digest>"; "i/<id>"
// maps an id back to its digest for revocation.
type tokenRecord struct {
	Token
	Digest string `json:"digest"`
}

// NewToken is the input of CreateToken.
type NewToken struct {
	Name    string
	Role    Role
	User    string // required for RoleUser; optional for RoleAdmin (who /me is)
	Expires time.Time
}

func checkTokenName(name string) error {
	if name == "" || len(name) > 64 || !safetext.Valid(name) {
		return fmt.Errorf("%w: token name must be 1 to 64 characters without control characters", ErrInvalid)
	}
	return nil
}

// CreateToken adds an API token and returns it with its secret, which is
// never available again: only HMAC(pepper, secret) is stored.
func (s *Store) CreateToken(ctx context.Context, in NewToken) (Token, string, error) {
	if err := checkTokenName(in.Name); err != nil {
		return Token{}, "", err
	}
	if in.Role != RoleUser && in.Role != RoleAdmin {
		return Token{}, "", fmt.Errorf("%w: role must be user or admin", ErrInvalid)
	}
	if in.Role == RoleUser && in.User == "" {
		return Token{}, "", fmt.Errorf("%w: a user token needs a user", ErrInvalid)
	}
	now := s.opts.Clock.Now().UTC()
	if !in.Expires.IsZero() && !in.Expires.After(now) {
		return Token{}, "", fmt.Errorf("%w: expiry is in the past", ErrInvalid)
	}
	secret, id, err := newTokenSecret(s.opts.Rand)
	if err != nil {
		return Token{}, "", err
	}
	rec := tokenRecord{Token: Token{ID: id, Name: in.Name, Role: in.Role, Created: now, Expires: in.Expires.UTC()},
		Digest: s.mac.hexDigest("token", secret)}
	err = s.update(func(tx kvTx) error {
		if in.User != "" {
			name, err := CanonicalUsername(in.User)
			if err != nil {
				return fmt.Errorf("user: %w", ErrNotFound)
			}
			if _, err := s.getUser(tx, name); err != nil {
				return err
			}
			rec.User = name
		}
		if err := putJSON(tx, bTokens, "d/"+rec.Digest, rec); err != nil {
			return err
		}
		if err := tx.Put(bTokens, "i/"+id, []byte(rec.Digest)); err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "token.create", User: rec.User,
			Detail: fmt.Sprintf("id=%s name=%q role=%s", id, in.Name, in.Role)})
	})
	if err != nil {
		return Token{}, "", err
	}
	return rec.Token, secret, nil
}

func newTokenSecret(rnd io.Reader) (secret, id string, err error) {
	b := make([]byte, 32)
	if _, err := io.ReadFull(rnd, b); err != nil {
		return "", "", err
	}
	if id, err = newID(rnd); err != nil {
		return "", "", err
	}
	return tokenPrefix + tokenEncoding.EncodeToString(b), id, nil
}

// VerifyToken returns the token a bearer secret belongs to: one HMAC and
// one read. Unknown, malformed and expired tokens are all ErrUnauthorized.
func (s *Store) VerifyToken(ctx context.Context, secret string) (Token, error) {
	if len(secret) != tokenLen || !strings.HasPrefix(secret, tokenPrefix) {
		return Token{}, ErrUnauthorized
	}
	d := s.mac.hexDigest("token", secret)
	var rec tokenRecord
	var found bool
	err := s.view(func(tx kvTx) (err error) {
		found, err = getJSON(tx, bTokens, "d/"+d, &rec)
		return err
	})
	switch {
	case err != nil:
		return Token{}, err
	case !found || subtle.ConstantTimeCompare([]byte(rec.Digest), []byte(d)) != 1:
		return Token{}, ErrUnauthorized
	case !rec.Expires.IsZero() && !s.opts.Clock.Now().Before(rec.Expires):
		return Token{}, ErrUnauthorized
	}
	return rec.Token, nil
}

// ListTokens returns every API token, oldest first.
func (s *Store) ListTokens(ctx context.Context) ([]Token, error) {
	out := []Token{}
	err := s.view(func(tx kvTx) error {
		return tx.Scan(bTokens, "d/", func(_ string, v []byte) error {
			var rec tokenRecord
			if _, err := getJSONBytes(v, &rec); err != nil {
				return err
			}
			out = append(out, rec.Token)
			return nil
		})
	})
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// RevokeToken deletes an API token; it stops working at once.
func (s *Store) RevokeToken(ctx context.Context, id string) error {
	return s.update(func(tx kvTx) error {
		d := tx.Get(bTokens, "i/"+id)
		if d == nil {
			return fmt.Errorf("token %s: %w", safetext.Clip(strings.ToValidUTF8(id, "?"), 32), ErrNotFound)
		}
		var rec tokenRecord
		if _, err := getJSON(tx, bTokens, "d/"+string(d), &rec); err != nil {
			return err
		}
		if err := tx.Delete(bTokens, "d/"+string(d)); err != nil {
			return err
		}
		if err := tx.Delete(bTokens, "i/"+id); err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "token.revoke", User: rec.User,
			Detail: fmt.Sprintf("id=%s name=%q", rec.ID, rec.Name)})
	})
}

// deleteUserTokensTx deletes the API tokens that act as user, so that none
// outlives the account (or serves a new account given the same name).
func (s *Store) deleteUserTokensTx(ctx context.Context, tx kvTx, user string) error {
	var recs []tokenRecord
	if err := tx.Scan(bTokens, "d/", func(_ string, v []byte) error {
		var rec tokenRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return err
		}
		if rec.User == user {
			recs = append(recs, rec)
		}
		return nil
	}); err != nil {
		return err
	}
	for _, rec := range recs {
		if err := tx.Delete(bTokens, "d/"+rec.Digest); err != nil {
			return err
		}
		if err := tx.Delete(bTokens, "i/"+rec.ID); err != nil {
			return err
		}
		if err := s.audit.appendTx(tx, ctx, Event{Kind: "token.revoke", User: user,
			Detail: fmt.Sprintf("id=%s name=%q reason=user_deleted", rec.ID, rec.Name)}); err != nil {
			return err
		}
	}
	return nil
}
