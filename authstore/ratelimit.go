package authstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"net/netip"
	"sync"
	"time"
)

// Limits tune the failure budgets (A1–A3).
type Limits struct {
	// UserBudget bounds the wrong secrets verified for one account in any
	// UserMemory (24 h) from sources that are not known-good for it, across
	// every protocol and the web; successes in between do not reopen it
	// (default 100).
	UserBudget int
	// PairBudget bounds the wrong secrets verified for one account from
	// one source in any UserMemory, known-good or not (default 20).
	PairBudget     int
	SourceFree     int           // failures per source before answers slow down (default 5)
	SourceDelay    time.Duration // first delay (default 2 s), doubling
	SourceMaxDelay time.Duration // cap (default 15 s)
	StaleWindow    time.Duration // a repeated wrong secret is not charged again within this (default 15 min)
	UserMemory     time.Duration // the window both budgets count in (default 24 h)
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
	lastSweep time.Time
}

// maxGood bounds the known-good sources remembered per account.
const maxGood = 16

type userLimit struct {
	charges budgetLog // wrong secrets (and attempts in flight) from sources not known-good
	last    time.Time
	good    map[netip.Prefix]time.Time // sources that logged in successfully
	pairs   map[netip.Prefix]*pairLimit
}

// pace spaces one party's answers once it is over its free failures.
type pace struct {
	failures int       // settled failures
	next     time.Time // earliest time the next slowed answer may go out
}

type sourceLimit struct {
	pace
	last time.Time
}

// pairLimit is one account seen from one source.
type pairLimit struct {
	charges budgetLog // wrong secrets (and attempts in flight) from this source
	// pace slows a known-good source by its own failures for the account
	// only, never by what other accounts' failures from its address earned.
	pace
	last  time.Time
	stale map[[16]byte]time.Time // fingerprints of recent wrong secrets
}

// budgetLog holds the times of the charges inside the budget window, oldest
// first. It never holds more entries than its budget: an attempt is charged
// only while there is room, so the log is the count.
type budgetLog []time.Time

// prune drops charges older than window.
func (b *budgetLog) prune(now time.Time, window time.Duration) {
	i := 0
	for i < len(*b) && now.Sub((*b)[i]) >= window {
		i++
	}
	*b = append((*b)[:0], (*b)[i:]...)
}

// remove takes back one charge made at at (a success or an outage).
func (b *budgetLog) remove(at time.Time) {
	for i := len(*b) - 1; i >= 0; i-- {
		if (*b)[i].Equal(at) {
			*b = append((*b)[:i], (*b)[i+1:]...)
			return
		}
	}
}

// ticket is one charged attempt; settle it with success or failure.
type ticket struct {
	user       string
	src        netip.Prefix
	fp         [16]byte
	at         time.Time // when the budgets were charged
	charged    bool      // the pair budget holds a charge made at at
	userCharge bool      // the account budget holds one too (source not known-good)
	knownGood  bool
	Throttled  bool
	Delay      time.Duration
}

func newLimiter(cfg Limits, now func() time.Time) *limiter {
	key := make([]byte, 32)
	rand.Read(key)
	return &limiter{cfg: cfg.withDefaults(), now: now, fpKey: key, users: map[string]*userLimit{},
		sources: map[netip.Prefix]*sourceLimit{}}
}

// SourcePrefix is the one grouping of client addresses into sources: IPv4
// by /32 and IPv6 by /64, one host or one site. One subscriber usually
// holds a whole /64, and counting single addresses would give it 2^64
// budgets. The limiter counts failures by it, the proxy its connection
// caps, and the web sign-in its checks in flight.
func SourcePrefix(a netip.Addr) netip.Prefix {
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

// charge books an attempt before verification. Both budgets count it as
// a failure at once, so concurrent guesses cannot overrun them (A3); a
// success takes its own charge back but never anyone else's, so a user's
// polling mail app cannot reopen a budget for a guesser (A1). A source that
// is known-good for the account is held to the account+source budget only.
// The delays count only settled failures: a correct login in flight must
// not slow its neighbours behind the same address (an office NAT, a webmail
// host). A burst of parallel guesses can therefore pass before its failures
// settle; the per-address connection cap bounds that burst. The caller must
// wait Delay, then refuse without verifying if Throttled.
func (l *limiter) charge(user string, src netip.Addr, secret string) *ticket {
	t := &ticket{user: user, src: SourcePrefix(src)}
	m := hmac.New(sha256.New, l.fpKey)
	m.Write([]byte(user + "\x00" + secret))
	copy(t.fp[:], m.Sum(nil))

	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	l.sweep(now)
	u := l.user(user)
	s := l.source(t.src)
	p := u.pair(t.src)
	u.charges.prune(now, l.cfg.UserMemory)
	p.charges.prune(now, l.cfg.UserMemory)
	_, t.knownGood = u.good[t.src]
	t.Throttled = (!t.knownGood && len(u.charges) >= l.cfg.UserBudget) || len(p.charges) >= l.cfg.PairBudget
	seen, stale := p.stale[t.fp]
	if !t.Throttled && !(stale && now.Sub(seen) < l.cfg.StaleWindow) {
		// A repeat of a recent wrong secret (a phone retrying an old
		// password) is not charged again and does not escalate.
		t.charged, t.at = true, now
		p.charges = append(p.charges, now)
		if !t.knownGood {
			t.userCharge = true
			u.charges = append(u.charges, now)
		}
	}
	u.last, s.last = now, now
	if t.knownGood && now.Sub(p.last) > l.cfg.StaleWindow && !p.next.After(now) {
		p.pace.failures = 0 // the pair's own delay calms down like a source's
	}
	p.last = now
	// A known-good source is spaced by its own failures for this account
	// only; every other attempt by its source's.
	pc := &s.pace
	if t.knownGood {
		pc = &p.pace
	}
	// A charged attempt is spaced as the failure it may become: after
	// SourceFree settled failures, the next answer already waits.
	failures := pc.failures
	if t.charged {
		failures++
	}
	t.Delay = l.delay(pc, failures, now, t.Throttled)
	return t
}

// delay spaces a party's answers once it is over its free failures. The
// slots are booked one after another, so parallel connections from one
// source queue instead of multiplying its guessing rate (A2).
func (l *limiter) delay(pc *pace, failures int, now time.Time, throttled bool) time.Duration {
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
	if pc.next.After(now) {
		start = pc.next
	}
	pc.next = start.Add(d)
	return pc.next.Sub(now)
}

// success takes back the attempt's own charge (it was no wrong secret) and
// remembers the source as known-good for this account. It clears nothing
// else: wrong secrets stay counted for their whole window.
func (l *limiter) success(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uncharge(t)
	l.markGood(l.user(t.user), t.src, l.now())
}

// good remembers src as known-good for user after a login that needed no
// charge (a right app password).
func (l *limiter) good(user string, src netip.Addr) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	u := l.user(user)
	u.last = now
	l.markGood(u, SourcePrefix(src), now)
}

func (l *limiter) markGood(u *userLimit, src netip.Prefix, now time.Time) {
	u.good[src] = now
	if len(u.good) > maxGood {
		oldest := src
		for k, at := range u.good {
			if at.Before(u.good[oldest]) {
				oldest = k
			}
		}
		delete(u.good, oldest)
	}
}

// uncharge takes an attempt's charges back out of both budgets.
func (l *limiter) uncharge(t *ticket) {
	if !t.charged {
		return
	}
	u := l.user(t.user)
	if t.userCharge {
		u.charges.remove(t.at)
	}
	u.pair(t.src).charges.remove(t.at)
}

// maxStale bounds the wrong-secret fingerprints kept per account+source.
const maxStale = 8

// failure settles an attempt as a failure: its charges stay, its source
// (or, for a known-good source, its account+source pair) counts one more
// failure towards its delay, and the secret's fingerprint is remembered so
// a retry of the same wrong secret is not charged again. A known
// fingerprint is refreshed even when the set is full, and a full set drops
// its oldest entry: otherwise a phone retrying an old password would start
// escalating once the source had tried eight other wrong secrets.
func (l *limiter) failure(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	p := l.user(t.user).pair(t.src)
	if t.charged {
		l.source(t.src).pace.failures++
		if t.knownGood {
			p.pace.failures++
		}
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

// forgetUser clears an account's budgets (after an admin sets a password).
func (l *limiter) forgetUser(user string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if u, ok := l.users[user]; ok {
		u.charges = nil
		for _, p := range u.pairs {
			p.charges = nil
		}
	}
}

// accountCharges is how many charges the account budget holds now.
func (l *limiter) accountCharges(user string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	u, ok := l.users[user]
	if !ok {
		return 0
	}
	u.charges.prune(l.now(), l.cfg.UserMemory)
	return len(u.charges)
}

func (l *limiter) user(name string) *userLimit {
	u := l.users[name]
	if u == nil {
		u = &userLimit{good: map[netip.Prefix]time.Time{}, pairs: map[netip.Prefix]*pairLimit{}}
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

func (u *userLimit) pair(src netip.Prefix) *pairLimit {
	p := u.pairs[src]
	if p == nil {
		p = &pairLimit{stale: map[[16]byte]time.Time{}}
		u.pairs[src] = p
	}
	return p
}

// sweep drops idle entries at most once a minute, keeping memory bounded
// by recent activity. A pair lives while it holds charges inside the
// budget window, so a budget is never forgotten early.
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
	for k, u := range l.users {
		if now.Sub(u.last) > l.cfg.UserMemory {
			delete(l.users, k)
			continue
		}
		for src, p := range u.pairs {
			p.charges.prune(now, l.cfg.UserMemory)
			if len(p.charges) == 0 && now.Sub(p.last) > l.cfg.StaleWindow && now.After(p.next) {
				delete(u.pairs, src)
			}
		}
	}
}

// refund takes back a charge when the store, not the credential, failed:
// an outage must not burn anyone's budget (P6).
func (l *limiter) refund(t *ticket) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.uncharge(t)
}
