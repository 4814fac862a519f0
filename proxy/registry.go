package proxy

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/clock"
)

// SessionInfo describes one relayed session for listings and kicks.
type SessionInfo struct {
	ID           string
	Username     string // canonical
	UserID       string
	CredentialID string // app password id, or authstore.PasswordCredential
	AppPassName  string // the app password's name; empty for the account password
	Protocol     authstore.Protocol
	Remote       netip.AddrPort
	Client       string // client name the client announced, for display only
	Start        time.Time
	// Expires is when the session's credential stops working (an app
	// password's expiry); the session ends then. Zero: never.
	Expires  time.Time
	BytesIn  int64 // client to upstream
	BytesOut int64 // upstream to client
}

// Filter selects live sessions. Every non-empty field must match. A Filter
// with no field set matches nothing unless All is set, so that a forgotten
// field never ends every session by accident.
type Filter struct {
	SessionID    string
	Username     string // canonical
	AppPassID    string
	PasswordOnly bool // only sessions that logged in with the account password
	All          bool // allow a filter without fields to match every session
}

func (f Filter) empty() bool {
	return f.SessionID == "" && f.Username == "" && f.AppPassID == "" && !f.PasswordOnly
}

func (f Filter) matches(s SessionInfo) bool {
	if f.empty() && !f.All {
		return false
	}
	switch {
	case f.SessionID != "" && f.SessionID != s.ID:
		return false
	case f.Username != "" && f.Username != s.Username:
		return false
	case f.AppPassID != "" && f.AppPassID != s.CredentialID:
		return false
	case f.PasswordOnly && s.CredentialID != authstore.PasswordCredential:
		return false
	}
	return true
}

// entry is a live session as the registry sees it.
type entry interface {
	info() SessionInfo
	// end starts ending the session without waiting for it; it reports
	// false when the session was already ending.
	end(reason Reason) bool
}

// live is a registered entry with the keys it is indexed under, which never
// change after registration.
type live struct {
	e       entry
	key     SessionInfo // ID, Username and CredentialID only
	expires time.Time
	heapAt  int // position in Registry.expiry; -1 when not in it
}

// recentKicks is how many kicks the registry remembers for logins still in
// flight; a login that saw more kicks than this while it ran is refused.
const recentKicks = 64

type kickRecord struct {
	seq uint64
	f   Filter
}

// errKickedDuringLogin refuses a login whose credential was revoked (or
// whose user was kicked, or whose app password expired) after authstore
// accepted it but before the session was registered; without it such a
// session would escape the revocation.
var errKickedDuringLogin = errors.New("session ended during login")

// Registry tracks live relayed sessions of every front-end so that admins
// can list them and revocations can end them. Sessions are indexed by user
// and by credential, so a kick touches only the sessions it may end, and
// ordered by expiry, so one timer ends each session whose app password
// expires and, when the organisation's grace period runs out, every
// account-password session.
type Registry struct {
	clock clock.Clock // where it reads the time and sets its one timer

	mu       sync.Mutex
	sessions map[string]*live
	byUser   map[string]map[string]*live
	byCred   map[string]map[string]*live // app password id, or authstore.PasswordCredential
	seq      uint64                      // number of kicks so far
	recent   []kickRecord
	timed    // expiries, the grace date and the timer; guarded by mu
}

// NewRegistry returns an empty registry on the system clock.
func NewRegistry() *Registry { return newRegistryWithClock(clock.System) }

// newRegistryWithClock returns an empty registry that reads time from c
// (nil: the system clock).
func newRegistryWithClock(c clock.Clock) *Registry {
	return &Registry{
		clock:    clock.Or(c),
		sessions: make(map[string]*live),
		byUser:   make(map[string]map[string]*live),
		byCred:   make(map[string]map[string]*live),
	}
}

// List returns the live sessions, oldest first.
func (r *Registry) List() []SessionInfo { return r.Find(Filter{All: true}) }

// Find returns the live sessions f matches, oldest first.
func (r *Registry) Find(f Filter) []SessionInfo {
	r.mu.Lock()
	hit := r.matching(f)
	out := make([]SessionInfo, 0, len(hit))
	for _, l := range hit {
		out = append(out, l.e.info())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Count returns how many sessions are live.
func (r *Registry) Count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.sessions)
}

// matching returns the sessions f matches, looking only at the smallest
// index that can hold them. r.mu must be held.
func (r *Registry) matching(f Filter) []*live {
	if f.empty() && !f.All {
		return nil
	}
	var pool map[string]*live
	switch {
	case f.SessionID != "":
		l := r.sessions[f.SessionID]
		if l == nil || !f.matches(l.key) {
			return nil
		}
		return []*live{l}
	case f.AppPassID != "":
		pool = r.byCred[f.AppPassID]
	case f.Username != "":
		pool = r.byUser[f.Username]
	case f.PasswordOnly:
		pool = r.byCred[authstore.PasswordCredential]
	default:
		pool = r.sessions
	}
	out := make([]*live, 0, len(pool))
	for _, l := range pool {
		if f.matches(l.key) {
			out = append(out, l)
		}
	}
	return out
}

// KickSession ends the live session with the given id as Kick does, found
// through the registry's index by id, and returns what it was; ok is false when no such session was live or it was
// already ending.
func (r *Registry) KickSession(id, reason string) (info SessionInfo, ok bool) {
	if id == "" {
		return SessionInfo{}, false
	}
	r.mu.Lock()
	r.recordKick(Filter{SessionID: id})
	l := r.sessions[id]
	r.mu.Unlock()
	if l == nil {
		return SessionInfo{}, false
	}
	info = l.e.info()
	return info, l.e.end(textReason(reason))
}

// CredentialSessions returns how many live sessions of user use the
// credential id (an app password id), counted from the index by credential.
func (r *Registry) CredentialSessions(user, id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, l := range r.byCred[id] {
		if l.key.Username == user {
			n++
		}
	}
	return n
}

// recordKick remembers a kick for the logins in flight. r.mu must be held.
func (r *Registry) recordKick(f Filter) {
	r.seq++
	if len(r.recent) == recentKicks {
		r.recent = r.recent[1:]
	}
	r.recent = append(r.recent, kickRecord{seq: r.seq, f: f})
}

// Kick ends the sessions f matches: each gets Bye(reason) and both of its
// connections close within a second. It returns how many sessions it ended.
func (r *Registry) Kick(f Filter, reason string) int {
	return r.kick(f, textReason(reason))
}

// textReason is a reason given as words (an administrator's action); they
// are told as they are.
func textReason(text string) Reason {
	if text == "" {
		text = "session ended"
	}
	return Reason{Text: text}
}

func (r *Registry) kick(f Filter, reason Reason) int {
	if f.empty() && !f.All {
		return 0
	}
	r.mu.Lock()
	r.recordKick(f)
	hit := r.matching(f)
	r.mu.Unlock()
	return endAll(hit, reason)
}

func endAll(hit []*live, reason Reason) int {
	n := 0
	for _, l := range hit {
		if l.e.end(reason) {
			n++
		}
	}
	return n
}

// Revoke ends the sessions a credential change invalidates, telling each
// client what changed.
func (r *Registry) Revoke(rv authstore.Revocation) int {
	return r.kick(Filter{
		Username:     rv.Username,
		AppPassID:    rv.AppPassID,
		PasswordOnly: rv.PasswordOnly,
		All:          true, // an empty Username means every user
	}, revocationReason(rv.Cause))
}

// mark returns a token to pass to add: kicks after it apply to the session
// being logged in.
func (r *Registry) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// add registers e unless a kick since mark matches it or its credential
// expired meanwhile.
func (r *Registry) add(e entry, mark uint64) error {
	info := e.info()
	l := &live{e: e, key: SessionInfo{ID: info.ID, Username: info.Username, CredentialID: info.CredentialID},
		expires: info.Expires, heapAt: -1}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seq-mark > uint64(len(r.recent)) {
		return errKickedDuringLogin // forgotten kicks may have matched
	}
	for _, k := range r.recent {
		if k.seq > mark && k.f.matches(l.key) {
			return errKickedDuringLogin
		}
	}
	if !l.expires.IsZero() && !r.clock.Now().Before(l.expires) {
		return errKickedDuringLogin
	}
	r.sessions[info.ID] = l
	index(r.byUser, info.Username, l)
	index(r.byCred, info.CredentialID, l)
	if !l.expires.IsZero() {
		r.pushExpiry(l)
	}
	return nil
}

func index(m map[string]map[string]*live, k string, l *live) {
	set := m[k]
	if set == nil {
		set = make(map[string]*live)
		m[k] = set
	}
	set[l.key.ID] = l
}

func unindex(m map[string]map[string]*live, k, id string) {
	set := m[k]
	delete(set, id)
	if len(set) == 0 {
		delete(m, k)
	}
}

func (r *Registry) remove(id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	l := r.sessions[id]
	if l == nil {
		return
	}
	delete(r.sessions, id)
	unindex(r.byUser, l.key.Username, id)
	unindex(r.byCred, l.key.CredentialID, id)
	r.dropExpiry(l)
}
