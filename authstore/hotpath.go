package authstore

import (
	"sync"
	"sync/atomic"
)

// The hot path: DAV clients send Basic on every request, so an app-password
// login must cost microseconds (one HMAC and a map read), not a bbolt
// transaction and three JSON decodes. decisionCache keeps what a login
// reads from the store (the user, the policy, the user's app passwords seen
// so far), tagged with the store's write generation. Every write that can
// change a decision (revoke, expiry change, password or factor change,
// disable, delete, policy) goes through Store.update, which moves the
// generation on before it returns, so no entry outlives it: the first
// login after a write reads the store again. Expiry and grace periods are
// judged at each login against the clock, never cached. Negative answers
// (unknown users, unknown secrets) are not cached: they read the store.
//
// A replicated store (DESIGN.md) must move the generation when its watch
// delivers another node's write.
type decisionCache struct {
	gen atomic.Uint64

	mu    sync.RWMutex
	users map[string]*cachedUser // canonical name → what a login read
}

// maxCachedUsers bounds the cache; past it, it starts over.
const maxCachedUsers = 100_000

// cachedUser is what logins read for one user. The records are never
// changed once cached (a change makes new ones), so logins share them.
type cachedUser struct {
	gen    uint64
	user   *userRecord
	policy Policy
	// appPws maps an app password's digest (hex) to its record; filled as
	// logins find them. Guarded by decisionCache.mu.
	appPws map[string]*appPwRecord
}

func newDecisionCache() *decisionCache {
	return &decisionCache{users: map[string]*cachedUser{}}
}

// invalidate forgets everything; called after every committed write.
func (c *decisionCache) invalidate() {
	c.gen.Add(1)
}

// cachedLoad is load with the cache in front. What it returns is shared:
// callers only read it.
func (s *Store) cachedLoad(name, secret string) (lookup, error) {
	c := s.hot
	gen := c.gen.Load()
	c.mu.RLock()
	e := c.users[name]
	c.mu.RUnlock()
	if e == nil || e.gen != gen {
		l, err := s.load(name, secret)
		if err == nil && l.user != nil {
			c.remember(gen, name, l)
		}
		return l, err
	}
	l := lookup{user: e.user, policy: e.policy}
	pw, ok := normalizeAppPassword(secret)
	if !ok {
		return l, nil // an account password: the KDF decides
	}
	d := s.appPwDigest(e.user.ID, pw)
	c.mu.RLock()
	ap, found := e.appPws[d]
	c.mu.RUnlock()
	if !found {
		// Not seen yet (or not an app password at all): ask the store.
		full, err := s.load(name, secret)
		if err == nil && full.user != nil {
			c.remember(gen, name, full)
		}
		return full, err
	}
	l.appPw = ap
	return l, nil
}

// remember stores what a load read at generation gen, unless a write
// happened since (then the next login reads again).
func (c *decisionCache) remember(gen uint64, name string, l lookup) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen.Load() != gen {
		return
	}
	e := c.users[name]
	if e == nil || e.gen != gen {
		if len(c.users) >= maxCachedUsers {
			clear(c.users)
		}
		e = &cachedUser{gen: gen, user: l.user, policy: l.policy, appPws: map[string]*appPwRecord{}}
		c.users[name] = e
	}
	if l.appPw != nil {
		e.appPws[l.appPw.Digest] = l.appPw
	}
}
