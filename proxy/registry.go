package proxy

import (
	"cmp"
	"errors"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// SessionInfo describes one relayed session for listings and kicks.
type SessionInfo struct {
	ID           string
	Username     string // canonical
	UserID       string
	CredentialID string // app password id, or "password"
	Protocol     authstore.Protocol
	Remote       netip.AddrPort
	Client       string // client name the client announced, for display only
	Start        time.Time
	BytesIn      int64 // client to upstream
	BytesOut     int64 // upstream to client
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
	case f.PasswordOnly && s.CredentialID != passwordCredential:
		return false
	}
	return true
}

// passwordCredential is what authstore.Grant.CredentialID says for the
// account password.
const passwordCredential = "password"

// entry is a live session as the registry sees it.
type entry interface {
	info() SessionInfo
	// end starts ending the session without waiting for it; it reports
	// false when the session was already ending.
	end(reason string) bool
}

// recentKicks is how many kicks the registry remembers for logins still in
// flight; a login that saw more kicks than this while it ran is refused.
const recentKicks = 64

type kickRecord struct {
	seq uint64
	f   Filter
}

// errKickedDuringLogin refuses a login whose credential was revoked (or
// whose user was kicked) after authstore accepted it but before the session
// was registered; without it such a session would escape the revocation.
var errKickedDuringLogin = errors.New("session ended during login")

// Registry tracks live relayed sessions of every front-end so that admins
// can list them and revocations can end them.
type Registry struct {
	mu       sync.Mutex
	sessions map[string]entry
	seq      uint64 // number of kicks so far
	recent   []kickRecord
}

// NewRegistry returns an empty registry.
func NewRegistry() *Registry {
	return &Registry{sessions: make(map[string]entry)}
}

// List returns the live sessions, oldest first.
func (r *Registry) List() []SessionInfo {
	r.mu.Lock()
	out := make([]SessionInfo, 0, len(r.sessions))
	for _, e := range r.sessions {
		out = append(out, e.info())
	}
	r.mu.Unlock()
	slices.SortFunc(out, func(a, b SessionInfo) int {
		return cmp.Or(a.Start.Compare(b.Start), cmp.Compare(a.ID, b.ID))
	})
	return out
}

// Kick ends the sessions f matches: each gets Bye(reason) and both of its
// connections close within a second. It returns how many sessions it ended.
func (r *Registry) Kick(f Filter, reason string) int {
	if f.empty() && !f.All {
		return 0
	}
	if reason == "" {
		reason = "session ended"
	}
	r.mu.Lock()
	r.seq++
	if len(r.recent) == recentKicks {
		r.recent = r.recent[1:]
	}
	r.recent = append(r.recent, kickRecord{seq: r.seq, f: f})
	var hit []entry
	for _, e := range r.sessions {
		if f.matches(e.info()) {
			hit = append(hit, e)
		}
	}
	r.mu.Unlock()
	n := 0
	for _, e := range hit {
		if e.end(reason) {
			n++
		}
	}
	return n
}

// Revoke ends the sessions a credential change invalidates.
func (r *Registry) Revoke(rv authstore.Revocation) int {
	return r.Kick(Filter{
		Username:     rv.Username,
		AppPassID:    rv.AppPassID,
		PasswordOnly: rv.PasswordOnly,
		All:          true, // an empty Username means every user
	}, "credentials changed")
}

// mark returns a token to pass to add: kicks after it apply to the session
// being logged in.
func (r *Registry) mark() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seq
}

// add registers e unless a kick since mark matches it.
func (r *Registry) add(e entry, mark uint64) error {
	info := e.info()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seq-mark > uint64(len(r.recent)) {
		return errKickedDuringLogin // forgotten kicks may have matched
	}
	for _, k := range r.recent {
		if k.seq > mark && k.f.matches(info) {
			return errKickedDuringLogin
		}
	}
	r.sessions[info.ID] = e
	return nil
}

func (r *Registry) remove(id string) {
	r.mu.Lock()
	delete(r.sessions, id)
	r.mu.Unlock()
}
