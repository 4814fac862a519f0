package authstore

import (
	"context"
	"fmt"
	"time"
)

// bWebSessions holds signed-in web sessions, keyed by HMAC(pepper, id): a
// copy of the database does not hold a usable cookie.
const bWebSessions = "websessions"

// WebSession is a browser session of the admin pages and API. The store
// only keeps it; the admin package decides what it grants and when it
// times out. It is written at sign-in, re-verification and sign-out only.
type WebSession struct {
	User     string    `json:"user"`  // canonical
	State    string    `json:"state"` // "second_factor", "enroll" or "signed_in"
	CSRF     string    `json:"csrf"`
	Created  time.Time `json:"created"` // when the sign-in began; the absolute timeout counts from here
	Written  time.Time `json:"written"`
	ReauthAt time.Time `json:"reauth_at,omitzero"`
	// Seen is the last activity, saved at a graceful shutdown so that a
	// restart does not end sessions that were in use.
	Seen time.Time `json:"seen,omitzero"`
}

func (s *Store) webSessionKey(id string) string {
	return s.mac.hexDigest("websession", id)
}

// PutWebSession stores a session under id and, in the same transaction,
// deletes the session it replaces (rotation at sign-in and re-verification:
// the old cookie stops working the moment the new one exists).
func (s *Store) PutWebSession(ctx context.Context, id string, ws WebSession, replaces string) error {
	ws.Written = s.opts.Clock.Now().UTC()
	return s.update(func(tx kvTx) error {
		if replaces != "" {
			if err := tx.Delete(bWebSessions, s.webSessionKey(replaces)); err != nil {
				return err
			}
		}
		return putJSON(tx, bWebSessions, s.webSessionKey(id), ws)
	})
}

// GetWebSession returns the session stored under id, or ErrNotFound.
func (s *Store) GetWebSession(ctx context.Context, id string) (WebSession, error) {
	var ws WebSession
	err := s.view(func(tx kvTx) error {
		ok, err := getJSON(tx, bWebSessions, s.webSessionKey(id), &ws)
		if err == nil && !ok {
			err = fmt.Errorf("web session: %w", ErrNotFound)
		}
		return err
	})
	return ws, err
}

// DeleteWebSession ends one session (sign-out); a missing one is no error.
func (s *Store) DeleteWebSession(ctx context.Context, id string) error {
	return s.update(func(tx kvTx) error { return tx.Delete(bWebSessions, s.webSessionKey(id)) })
}

// EndWebSessions deletes every web session of user but the one under
// keep (may be empty), and those that ended before cutoff; it returns how
// many it deleted. Password changes, resets and disabling a user sign
// them out everywhere.
func (s *Store) EndWebSessions(ctx context.Context, user, keep string, cutoff time.Time) (int, error) {
	keepKey := ""
	if keep != "" {
		keepKey = s.webSessionKey(keep)
	}
	n := 0
	err := s.update(func(tx kvTx) error {
		var doomed []string
		err := tx.Scan(bWebSessions, "", func(k string, v []byte) error {
			var ws WebSession
			if _, err := getJSONBytes(v, &ws); err != nil || (k != keepKey && ws.User == user) || ws.Created.Before(cutoff) {
				doomed = append(doomed, k)
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, k := range doomed {
			if err := tx.Delete(bWebSessions, k); err != nil {
				return err
			}
		}
		n = len(doomed)
		return nil
	})
	return n, err
}

// SaveWebSessionActivity records the last activity of live sessions (id →
// time) in one transaction; sessions that ended meanwhile are skipped. A
// server calls it once, at shutdown: activity is never a write per request.
func (s *Store) SaveWebSessionActivity(ctx context.Context, seen map[string]time.Time) error {
	return s.update(func(tx kvTx) error {
		for id, at := range seen {
			key := s.webSessionKey(id)
			var ws WebSession
			ok, err := getJSON(tx, bWebSessions, key, &ws)
			if err != nil || !ok || !at.After(ws.Seen) {
				continue
			}
			ws.Seen = at.UTC()
			if err := putJSON(tx, bWebSessions, key, ws); err != nil {
				return err
			}
		}
		return nil
	})
}
