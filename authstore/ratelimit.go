package authstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// Limits tune the failure budgets (SECURITY.md A1–A3).
type Limits struct {
	UserBudget     int           // consecutive failures per account before refusing (default 100)
	PairBudget     int           // failures per account+source; bounds a known-good source too (default 20)
	SourceFree     int           // failures per source before answers slow down (default 5)
	SourceDelay    time.Duration // first delay (default 2 s), doubling
	SourceMaxDelay time.Duration // cap (default 15 s)
	StaleWindow    time.Duration // a repeated wrong secret is not charged again within this (default 15 min)
	UserMemory     time.Duration // how long an account's failure count is kept (default 24 h)
}

func (l Limits) withDefaults() Limits {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	defd := func(v *time.Duration, d time.Duration) {
		if *v == 0 {
			*v = d
		}
	}
	def(&l.UserBudget, 100)
	def(&l.PairBudget, 20)
	def(&l.SourceFree, 5)
	defd(&l.SourceDelay, 2*time.Second)
	defd(&l.SourceMaxDelay, 15*time.Second)
	defd(&l.StaleWindow, 15*time.Minute)
	defd(&l.UserMemory, 24*time.Hour)
	return l
}

// limiter is the one rate limiter: every protocol and the web charge it
// before verifying anything, so concurrent guesses cannot overrun a budget.
type limiter struct {
	cfg   Limits
	now   func() time.Time
	fpKey []byte

	mu        sync.Mutex
	users     map[string]*userLimit
	sources   map[netip.Prefix]*sourceLimit
	pairs     map[pairKey]*pairLimit
	lastSweep time.Time
}

type userLimit struct {
	failures int
	last     time.Time
	good     map[netip.Prefix]time.Time // sources that logged in successfully
}

type sourceLimit struct {
	failures int
	next     time.Time // earliest time the next slowed answer may go out
	last     time.Time
}

type pairKey struct {
	user string
	src  netip.Prefix
}

type pairLimit struct {
	failures int
	last     time.Time
	stale    map[[16]byte]time.Time // fingerprints of recent wrong secrets
}

// ticket is one charged attempt; settle it with success or failure.
type ticket struct {
	user      string
	src       netip.Prefix
	fp        [16]byte
	charged   bool
	Throttled bool
	Delay     time.Duration
}

func newLimiter(cfg Limits, now func() time.Time) *limiter {
	key := make([]byte, 32)
	rand.Read(key)
	return &limiter{cfg: cfg.withDefaults(), now: now, fpKey: key, users: map[string]*userLimit{},
		sources: map[netip.Prefix]*sourceLimit{}, pairs: map[pairKey]*pairLimit{}}
}

// sourcePrefix groups IPv4 by /32 and IPv6 by /64: one host or one site.
func sourcePrefix(a netip.Addr) netip.Prefix {
	a = a.Unmap()
	if !a.IsValid() {
		return netip.Prefix{}
	}
	bits := 32
	if a.Is6() {
		bits = 64
	}
	p, _ := a.Prefix(bits)
	return p
}

// charge books an attempt before verification. The account budget counts
// it as a failure at once, so concurrent guesses cannot overrun it (A3).
// The source's delay and the account+source budget count only settled
// failures: a correct login in flight must not slow its neighbours behind
// the same address (an office NAT, a webmail host). A burst of parallel
// guesses can therefore pass before its failures settle; the per-address
// connection cap bounds that burst. The caller must wait Delay, then
// refuse without verifying if Throttled.
func (l *limiter) charge(user string, src netip.Addr, secret string) *ticket {
	t := &ticket{user: user, src: sourcePrefix(src)}
	m := hmac.New(sha256.New, l.fpKey)
	m.Write([]byte(user + "\x00" + secret))
	copy(t.fp[:], m.Sum(nil))

	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	u := l.user(user)
	s := l.source(t.src)
	p := l.pair(pairKey{user, t.src})
	_, knownGood := u.good[t.src]
	if seen, ok := p.stale[t.fp]; ok && now.Sub(seen) < l.cfg.StaleWindow {
		// The same wrong secret again (a phone retrying an old password):
		// no new charge, no escalation.
		t.Throttled = (u.failures >= l.cfg.UserBudget && !knownGood) || p.failures >= l.cfg.PairBudget
	} else {
		t.charged = true
		if !knownGood {
			u.failures++
		}
		t.Throttled = (u.failures > l.cfg.UserBudget && !knownGood) || p.failures >= l.cfg.PairBudget
	}
	u.last, s.last, p.last = now, now, now
	// A charged attempt is spaced as the failure it may become: after
	// SourceFree settled failures, the next answer already waits.
	failures := s.failures
	if t.charged {
		failures++
	}
	t.Delay = l.delay(s, failures, now, t.Throttled)
	return t
}

// delay spaces a source's answers once it is over its free failures. The
// slots are booked one after another, so parallel connections from one
// source queue instead of multiplying its guessing rate (A2).
func (l *limiter) delay(s *sourceLimit, failures int, now time.Time, throttled bool) time.Duration {
	over := failures - l.cfg.SourceFree
	if over <= 0 && !throttled {
		return 0
	}
	d := l.cfg.SourceDelay
	for i := 1; i < over && d < l.cfg.SourceMaxDelay; i++ {
		d *= 2
	}
	d = min(d, l.cfg.SourceMaxDelay)
	start := now
	if s.next.After(now) {
		start = s.next
	}
	s.next = start.Add(d)
	return s.next.Sub(now)
}

// success clears the account's consecutive failures and remembers the
// source as known-good for this account.
func (l *limiter) success(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := l.user(t.user)
	u.failures = 0
	u.good[t.src] = now
	if len(u.good) > 16 {
		oldest := t.src
		for k, at := range u.good {
			if at.Before(u.good[oldest]) {
				oldest = k
			}
		}
		delete(u.good, oldest)
	}
	l.pair(pairKey{t.user, t.src}).failures = 0
}

// maxStale bounds the wrong-secret fingerprints kept per account+source.
const maxStale = 8

// failure settles a charged attempt as a failure of its source and of its
// account+source pair, and remembers the secret's fingerprint so a retry
// of the same wrong secret is not charged again. A known fingerprint is refreshed even when
// the set is full, and a full set drops its oldest entry: otherwise a
// phone retrying an old password would start escalating once the source
// had tried eight other wrong secrets.
func (l *limiter) failure(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.pair(pairKey{t.user, t.src})
	if t.charged {
		l.source(t.src).failures++
		p.failures++
	}
	if _, known := p.stale[t.fp]; !known && len(p.stale) >= maxStale {
		var oldest [16]byte
		first := true
		for fp, at := range p.stale {
			if first || at.Before(p.stale[oldest]) {
				oldest, first = fp, false
			}
		}
		delete(p.stale, oldest)
	}
	p.stale[t.fp] = l.now()
}

// forgetUser clears an account's budget (after an admin sets a password).
func (l *limiter) forgetUser(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.users[user]; ok {
		u.failures = 0
	}
}

func (l *limiter) user(name string) *userLimit {
	u := l.users[name]
	if u == nil {
		u = &userLimit{good: map[netip.Prefix]time.Time{}}
		l.users[name] = u
	}
	return u
}

func (l *limiter) source(p netip.Prefix) *sourceLimit {
	s := l.sources[p]
	if s == nil {
		s = &sourceLimit{}
		l.sources[p] = s
	}
	return s
}

func (l *limiter) pair(k pairKey) *pairLimit {
	p := l.pairs[k]
	if p == nil {
		p = &pairLimit{stale: map[[16]byte]time.Time{}}
		l.pairs[k] = p
	}
	return p
}

// sweep drops idle entries at most once a minute, keeping memory bounded
// by recent activity.
func (l *limiter) sweep(now time.Time) {
	if now.Sub(l.lastSweep) < time.Minute {
		return
	}
	l.lastSweep = now
	for k, s := range l.sources {
		if now.Sub(s.last) > l.cfg.StaleWindow && now.After(s.next) {
			delete(l.sources, k)
		}
	}
	for k, p := range l.pairs {
		if now.Sub(p.last) > l.cfg.StaleWindow {
			delete(l.pairs, k)
		}
	}
	for k, u := range l.users {
		if now.Sub(u.last) > l.cfg.UserMemory {
			delete(l.users, k)
		}
	}
}

// refund takes back a charge when the store, not the credential, failed:
// an outage must not burn anyone's budget (P6).
func (l *limiter) refund(t *ticket) {
	if !t.charged {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	u := l.user(t.user)
	if _, good := u.good[t.src]; !good && u.failures > 0 {
		u.failures--
	}
}
