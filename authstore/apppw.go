package authstore

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
)

// appPwRecord is what the apppw bucket holds under userID/id.
type appPwRecord struct {
	ID         string     `json:"id"`
	UserID     string     `json:"user_id"`
	User       string     `json:"user"`
	Name       string     `json:"name"`
	Scopes     []Protocol `json:"scopes"`
	Created    time.Time  `json:"created"`
	Expires    time.Time  `json:"expires,omitzero"`
	Revoked    time.Time  `json:"revoked,omitzero"`
	Digest     string     `json:"digest"`
	LastUsed   time.Time  `json:"last_used,omitzero"`
	LastIP     string     `json:"last_ip,omitempty"`
	LastClient string     `json:"last_client,omitempty"`
}

// AppPassword is the public view: never the secret or its digest.
type AppPassword struct {
	ID         string     `json:"id"`
	User       string     `json:"user"`
	Name       string     `json:"name"`
	Scopes     []Protocol `json:"scopes"`
	Created    time.Time  `json:"created"`
	Expires    time.Time  `json:"expires,omitzero"`
	Revoked    time.Time  `json:"revoked,omitzero"`
	LastUsed   time.Time  `json:"last_used,omitzero"`
	LastIP     string     `json:"last_ip,omitempty"`
	LastClient string     `json:"last_client,omitempty"`
}

func (r *appPwRecord) public() AppPassword {
	return AppPassword{ID: r.ID, User: r.User, Name: r.Name, Scopes: r.Scopes, Created: r.Created,
		Expires: r.Expires, Revoked: r.Revoked, LastUsed: r.LastUsed, LastIP: r.LastIP, LastClient: r.LastClient}
}

func (r *appPwRecord) covers(p Protocol) bool {
	if p == DAV {
		return slices.Contains(r.Scopes, CalDAV) || slices.Contains(r.Scopes, CardDAV)
	}
	return slices.Contains(r.Scopes, p)
}

// NewAppPassword is the input of CreateAppPassword.
type NewAppPassword struct {
	Name    string
	Scopes  []Protocol // empty: all
	Expires time.Time  // zero: never
}

// ParseScopes reads "imap,pop3" style lists.
func ParseScopes(s string) ([]Protocol, error) {
	if strings.TrimSpace(s) == "" {
		return nil, nil
	}
	var out []Protocol
	for _, f := range strings.Split(s, ",") {
		p := Protocol(strings.ToLower(strings.TrimSpace(f)))
		if !slices.Contains(AllScopes, p) {
			return nil, fmt.Errorf("%w: unknown scope %q (want %s)", ErrInvalid, f, joinScopes(AllScopes))
		}
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	return out, nil
}

func joinScopes(ps []Protocol) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = string(p)
	}
	return strings.Join(names, ", ")
}

func appPwKey(userID, id string) string { return userID + "/" + id }

// appPwDigest is the stored and indexed form of a normalised app password
// of one user: hex(HMAC-SHA256(pepper, userID ‖ 0 ‖ secret)).
func (s *Store) appPwDigest(userID, secret string) string {
	s.digests.Add(1)
	return s.mac.hexDigest(userID, secret)
}

// CreateAppPassword makes a new app password and returns it with its secret,
// the only time the secret is ever available.
func (s *Store) CreateAppPassword(ctx context.Context, user string, in NewAppPassword) (AppPassword, string, error) {
	in.Name = strings.TrimSpace(in.Name)
	if in.Name == "" || len(in.Name) > 100 || !safetext.Valid(in.Name) {
		return AppPassword{}, "", fmt.Errorf("%w: name must be 1 to 100 printable characters", ErrInvalid)
	}
	if len(in.Scopes) == 0 {
		in.Scopes = slices.Clone(AllScopes)
	}
	var scopes []Protocol
	for _, p := range in.Scopes {
		if !slices.Contains(AllScopes, p) {
			return AppPassword{}, "", fmt.Errorf("%w: unknown scope %q", ErrInvalid, p)
		}
		if !slices.Contains(scopes, p) {
			scopes = append(scopes, p)
		}
	}
	in.Scopes = scopes
	now := s.opts.Clock.Now().UTC()
	if !in.Expires.IsZero() && !in.Expires.After(now) {
		return AppPassword{}, "", fmt.Errorf("%w: expiry is in the past", ErrInvalid)
	}
	secret, err := newAppPassword(s.opts.Rand)
	if err != nil {
		return AppPassword{}, "", err
	}
	id, err := newID(s.opts.Rand)
	if err != nil {
		return AppPassword{}, "", err
	}
	var rec *appPwRecord
	_, err = s.modifyUser(ctx, user, Event{Kind: "apppw.create", Detail: id}, func(tx kvTx, u *userRecord) error {
		d := s.appPwDigest(u.ID, secret)
		rec = &appPwRecord{ID: id, UserID: u.ID, User: u.Name, Name: in.Name, Scopes: in.Scopes,
			Created: now, Expires: in.Expires.UTC(), Digest: d}
		if err := putJSON(tx, bAppPw, appPwKey(u.ID, id), rec); err != nil {
			return err
		}
		return tx.Put(bAppPwIndex, d, []byte(appPwKey(u.ID, id)))
	})
	if err != nil {
		return AppPassword{}, "", err
	}
	return rec.public(), FormatGrouped(secret, 4), nil
}

// ListAppPasswords returns a user's app passwords (revoked ones included,
// newest first), with last-use data not yet flushed merged in.
func (s *Store) ListAppPasswords(ctx context.Context, user string) ([]AppPassword, error) {
	cname, err := CanonicalUsername(user)
	if err != nil {
		return nil, fmt.Errorf("user: %w", ErrNotFound)
	}
	var out []AppPassword
	err = s.view(func(tx kvTx) error {
		u, err := s.getUser(tx, cname)
		if err != nil {
			return err
		}
		return tx.Scan(bAppPw, u.ID+"/", func(_ string, v []byte) error {
			var rec appPwRecord
			if _, err := getJSONBytes(v, &rec); err != nil {
				return err
			}
			s.usage.overlay(&rec)
			out = append(out, rec.public())
			return nil
		})
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.After(out[j].Created) })
	return out, err
}

// RevokeAppPassword revokes one app password and ends its sessions.
func (s *Store) RevokeAppPassword(ctx context.Context, user, id string) error {
	rec, err := s.modifyUser(ctx, user, Event{Kind: "apppw.revoke", Detail: id}, func(tx kvTx, u *userRecord) error {
		return s.revokeTx(tx, u.ID, id, true)
	})
	if err == nil {
		s.opts.OnRevoke(Revocation{Username: rec.Name, AppPassID: id, Cause: CauseAppPasswordRevoked})
	}
	return err
}

func (s *Store) revokeTx(tx kvTx, userID, id string, mustExist bool) error {
	var rec appPwRecord
	ok, err := getJSON(tx, bAppPw, appPwKey(userID, id), &rec)
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("app password %s: %w", id, ErrNotFound)
	}
	if !rec.Revoked.IsZero() {
		if mustExist {
			return fmt.Errorf("app password %s already revoked: %w", id, ErrState)
		}
		return nil
	}
	rec.Revoked = s.opts.Clock.Now().UTC()
	if err := tx.Delete(bAppPwIndex, rec.Digest); err != nil {
		return err
	}
	return putJSON(tx, bAppPw, appPwKey(userID, id), &rec)
}

func (s *Store) revokeAllTx(tx kvTx, userID string) error {
	var ids []string
	err := tx.Scan(bAppPw, userID+"/", func(k string, _ []byte) error {
		ids = append(ids, strings.TrimPrefix(k, userID+"/"))
		return nil
	})
	if err != nil {
		return err
	}
	for _, id := range ids {
		if err := s.revokeTx(tx, userID, id, false); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) deleteAppPasswordsTx(tx kvTx, userID string) error {
	var keys, digests []string
	err := tx.Scan(bAppPw, userID+"/", func(k string, v []byte) error {
		var rec appPwRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return err
		}
		keys, digests = append(keys, k), append(digests, rec.Digest)
		return nil
	})
	if err != nil {
		return err
	}
	for i := range keys {
		if err := tx.Delete(bAppPwIndex, digests[i]); err != nil {
			return err
		}
		if err := tx.Delete(bAppPw, keys[i]); err != nil {
			return err
		}
	}
	return nil
}

// usageTracker keeps last-used data in memory: a login never costs a disk
// write; flushUsage stores everything in one transaction.
type usageTracker struct {
	mu      sync.Mutex
	pending map[string]usage // apppw key → last use
}

type usage struct {
	at     time.Time
	ip     string
	client string
}

func newUsageTracker() *usageTracker { return &usageTracker{pending: map[string]usage{}} }

func (u *usageTracker) note(key string, at time.Time, ip netip.Addr, client string) {
	ipStr := "" // formatted before locking: every login of every user passes here
	if ip.IsValid() {
		ipStr = ip.String()
	}
	u.mu.Lock()
	defer u.mu.Unlock()
	u.pending[key] = usage{at: at, ip: ipStr, client: client}
}

func (u *usageTracker) overlay(rec *appPwRecord) {
	u.mu.Lock()
	defer u.mu.Unlock()
	if x, ok := u.pending[appPwKey(rec.UserID, rec.ID)]; ok {
		rec.LastUsed, rec.LastIP, rec.LastClient = x.at, x.ip, x.client
	}
}

func (u *usageTracker) take() map[string]usage {
	u.mu.Lock()
	defer u.mu.Unlock()
	p := u.pending
	u.pending = map[string]usage{}
	return p
}

// flushUsage writes pending last-used data in one transaction. On failure
// the data is kept for the next try.
func (s *Store) flushUsage() error {
	pending := s.usage.take()
	if len(pending) == 0 {
		return nil
	}
	err := s.update(func(tx kvTx) error {
		for key, x := range pending {
			var rec appPwRecord
			ok, err := getJSON(tx, bAppPw, key, &rec)
			if err != nil || !ok {
				continue // deleted meanwhile, or unreadable: nothing to note
			}
			rec.LastUsed, rec.LastIP, rec.LastClient = x.at, x.ip, x.client
			if err := putJSON(tx, bAppPw, key, &rec); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.usage.mu.Lock()
		for k, v := range pending {
			if _, newer := s.usage.pending[k]; !newer {
				s.usage.pending[k] = v
			}
		}
		s.usage.mu.Unlock()
	}
	return err
}
