package proxy

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

type fakeEntry struct {
	si     SessionInfo
	reason Reason
	ended  bool
}

func (e *fakeEntry) info() SessionInfo { return e.si }

func (e *fakeEntry) end(reason Reason) bool {
	if e.ended {
		return false
	}
	e.ended, e.reason = true, reason
	return true
}

// population registers one session per (user, credential) pair and
// returns them by "user/credential".
func population(t *testing.T, r *Registry) map[string]*fakeEntry {
	t.Helper()
	out := make(map[string]*fakeEntry)
	start := time.Unix(1000, 0)
	for i, k := range []string{"alice/password", "alice/a1", "alice/a2", "bob/password", "bob/b1"} {
		user, cred, _ := strings.Cut(k, "/")
		e := &fakeEntry{si: SessionInfo{
			ID: fmt.Sprintf("s%d", i), Username: user, CredentialID: cred,
			Start: start.Add(time.Duration(-i) * time.Second),
		}}
		if err := r.add(e, r.mark()); err != nil {
			t.Fatal(err)
		}
		out[k] = e
	}
	return out
}

// plant puts a session in the registry under key, outside every other
// index, which no real registration does: a lookup that finds it scanned.
func plant(r *Registry, key string, si SessionInfo) *fakeEntry {
	e := &fakeEntry{si: si}
	r.mu.Lock()
	r.sessions[key] = &live{e: e, key: si, heapAt: -1}
	r.mu.Unlock()
	return e
}

func endedKeys(pop map[string]*fakeEntry) []string {
	var out []string
	for k, e := range pop {
		if e.ended {
			out = append(out, k)
		}
	}
	slices.Sort(out)
	return out
}

func TestRevokeMapsToSessions(t *testing.T) {
	tests := []struct {
		name string
		rv   authstore.Revocation
		want []string
		says string // what the ended sessions are told
	}{
		{"app password revoked", authstore.Revocation{Username: "alice", AppPassID: "a1", Cause: authstore.CauseAppPasswordRevoked},
			[]string{"alice/a1"}, "this app password was revoked"},
		{"password changed", authstore.Revocation{Username: "alice", PasswordOnly: true, Cause: authstore.CausePasswordChanged},
			[]string{"alice/password"}, "the account password was changed"},
		{"user disabled", authstore.Revocation{Username: "bob", Cause: authstore.CauseDisabled},
			[]string{"bob/b1", "bob/password"}, "this account was disabled"},
		{"enforcement turned on", authstore.Revocation{PasswordOnly: true, Cause: authstore.CauseMFARequired},
			[]string{"alice/password", "bob/password"}, "two-step verification is now required and mail apps need an app password"},
		{"restore: every session", authstore.Revocation{}, []string{"alice/a1", "alice/a2", "alice/password", "bob/b1", "bob/password"},
			"session ended after a change to the account"},
		{"unknown user", authstore.Revocation{Username: "carol"}, nil, ""},
		{"id of another user", authstore.Revocation{Username: "bob", AppPassID: "a1"}, nil, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			pop := population(t, r)
			if n := r.Revoke(tt.rv); n != len(tt.want) {
				t.Errorf("Revoke ended %d, want %d", n, len(tt.want))
			}
			if got := endedKeys(pop); !slices.Equal(got, tt.want) {
				t.Errorf("ended %v, want %v", got, tt.want)
			}
			for _, k := range tt.want {
				if pop[k].reason.Text != tt.says {
					t.Errorf("%s ended with reason %q, want %q", k, pop[k].reason.Text, tt.says)
				}
			}
		})
	}
}

func TestFilterMatches(t *testing.T) {
	s := SessionInfo{ID: "s1", Username: "alice", CredentialID: "password"}
	ap := SessionInfo{ID: "s2", Username: "alice", CredentialID: "a1"}
	tests := []struct {
		name string
		f    Filter
		s    SessionInfo
		want bool
	}{
		{"empty matches nothing", Filter{}, s, false},
		{"all", Filter{All: true}, s, true},
		{"session id", Filter{SessionID: "s1"}, s, true},
		{"other session id", Filter{SessionID: "s2"}, s, false},
		{"user", Filter{Username: "alice"}, ap, true},
		{"user is exact", Filter{Username: "Alice"}, ap, false},
		{"app password", Filter{AppPassID: "a1"}, ap, true},
		{"app password vs password", Filter{AppPassID: "a1"}, s, false},
		{"password only", Filter{PasswordOnly: true}, s, true},
		{"password only vs app password", Filter{PasswordOnly: true}, ap, false},
		{"every field must match", Filter{Username: "alice", SessionID: "s9"}, s, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.f.matches(tt.s); got != tt.want {
				t.Errorf("%+v matches %+v = %v", tt.f, tt.s, got)
			}
		})
	}
	if want := (authstore.Grant{}).CredentialID(); authstore.PasswordCredential != want {
		t.Errorf("authstore.PasswordCredential = %q, authstore says %q", authstore.PasswordCredential, want)
	}
}

// TestKickBetweenVerdictAndRegistration: a kick after a login's mark and
// before its registration refuses the registration when it matches.
func TestKickBetweenVerdictAndRegistration(t *testing.T) {
	tests := []struct {
		name    string
		kicks   []Filter
		wantErr bool
	}{
		{"no kick", nil, false},
		{"matching kick", []Filter{{Username: "alice"}}, true},
		{"other user's kick", []Filter{{Username: "bob"}}, false},
		{"matching among others", []Filter{{Username: "bob"}, {PasswordOnly: true}, {AppPassID: "x"}}, true},
		{"more kicks than remembered", slices.Repeat([]Filter{{Username: "bob"}}, recentKicks+1), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRegistry()
			r.Kick(Filter{Username: "alice"}, "before the login") // must not count
			mark := r.mark()
			for _, f := range tt.kicks {
				r.Kick(f, "during the login")
			}
			e := &fakeEntry{si: SessionInfo{ID: "new", Username: "alice", CredentialID: "password"}}
			err := r.add(e, mark)
			if (err != nil) != tt.wantErr {
				t.Fatalf("add: %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, errKickedDuringLogin) {
				t.Errorf("add: %v", err)
			}
			if listed := len(r.List()) == 1; listed == tt.wantErr {
				t.Errorf("listed = %v after add error %v", listed, err)
			}
		})
	}
}

func TestKickCountsEachSessionOnce(t *testing.T) {
	r := NewRegistry()
	pop := population(t, r)
	if n := r.Kick(Filter{Username: "alice"}, ""); n != 3 {
		t.Errorf("first kick ended %d, want 3", n)
	}
	if n := r.Kick(Filter{All: true}, "again"); n != 2 {
		t.Errorf("second kick ended %d, want the 2 not yet ending", n)
	}
	if got := pop["alice/a1"].reason.Text; got != "session ended" {
		t.Errorf("default reason %q", got)
	}
}

func TestListOldestFirst(t *testing.T) {
	r := NewRegistry()
	population(t, r)
	list := r.List()
	if len(list) != 5 {
		t.Fatalf("%d sessions listed", len(list))
	}
	for i := 1; i < len(list); i++ {
		if list[i].Start.Before(list[i-1].Start) {
			t.Errorf("List not oldest first: %v", list)
		}
	}
	r.remove(list[0].ID)
	if n := len(r.List()); n != 4 {
		t.Errorf("%d listed after remove", n)
	}
}

// TestKickLooksOnlyAtItsIndex: a kick by user, app password or account
// password reaches sessions through the registry's indexes, never by
// walking every session. A session planted outside the indexes (which no
// real registration does) is invisible to those kicks and found by All.
func TestKickLooksOnlyAtItsIndex(t *testing.T) {
	r := NewRegistry()
	pop := population(t, r)
	hidden := plant(r, "hidden", SessionInfo{ID: "hidden", Username: "alice", CredentialID: "a1"})
	for _, f := range []Filter{{Username: "alice"}, {AppPassID: "a1"}, {Username: "alice", AppPassID: "a1"}} {
		r.Kick(f, "indexed")
		if hidden.ended {
			t.Fatalf("kick %+v walked every session", f)
		}
	}
	if !pop["alice/a1"].ended || !pop["alice/a2"].ended || pop["bob/b1"].ended {
		t.Fatalf("indexed kicks ended %v", endedKeys(pop))
	}
	r.Kick(Filter{All: true}, "all")
	if !hidden.ended {
		t.Error("a kick of every session missed one")
	}
}

// TestKickSessionByID: one session is found and ended through the index by
// id, and its owner comes back with it; a session whose id is not its index
// key (which no real registration makes) is not found, so nothing scans.
func TestKickSessionByID(t *testing.T) {
	r := NewRegistry()
	pop := population(t, r)
	hidden := plant(r, "elsewhere", SessionInfo{ID: "hidden", Username: "alice", CredentialID: "a1"})
	if _, ok := r.KickSession("hidden", ""); ok || hidden.ended {
		t.Fatal("KickSession walked every session")
	}
	si, ok := r.KickSession("s3", "by id")
	if !ok || si.Username != "bob" || si.CredentialID != "password" {
		t.Fatalf("KickSession(s3) = %+v, %v", si, ok)
	}
	if got := endedKeys(pop); !slices.Equal(got, []string{"bob/password"}) {
		t.Errorf("KickSession ended %v", got)
	}
	if _, ok := r.KickSession("s3", "again"); ok {
		t.Error("a session already ending was kicked twice")
	}
	if _, ok := r.KickSession("nope", ""); ok {
		t.Error("an unknown id was kicked")
	}
	// A login in flight under that id is refused, as with Kick.
	mark := r.mark()
	r.KickSession("s9", "")
	if err := r.add(&fakeEntry{si: SessionInfo{ID: "s9", Username: "carol", CredentialID: "password"}}, mark); !errors.Is(err, errKickedDuringLogin) {
		t.Errorf("login kicked by id in flight: %v", err)
	}
}

// TestCredentialSessions counts one user's sessions of one app password
// from the index by credential.
func TestCredentialSessions(t *testing.T) {
	r := NewRegistry()
	population(t, r)
	if err := r.add(&fakeEntry{si: SessionInfo{ID: "x1", Username: "alice", CredentialID: "a1"}}, r.mark()); err != nil {
		t.Fatal(err)
	}
	if err := r.add(&fakeEntry{si: SessionInfo{ID: "x2", Username: "bob", CredentialID: "a1"}}, r.mark()); err != nil {
		t.Fatal(err)
	}
	plant(r, "hidden", SessionInfo{ID: "hidden", Username: "alice", CredentialID: "a2"})
	for _, tc := range []struct {
		user, id string
		want     int
	}{{"alice", "a1", 2}, {"alice", "a2", 1}, {"bob", "a1", 1}, {"bob", "b1", 1}, {"carol", "a1", 0}, {"alice", "zz", 0}} {
		if got := r.CredentialSessions(tc.user, tc.id); got != tc.want {
			t.Errorf("CredentialSessions(%s, %s) = %d, want %d", tc.user, tc.id, got, tc.want)
		}
	}
	r.remove("x1")
	if got := r.CredentialSessions("alice", "a1"); got != 1 {
		t.Errorf("after remove: %d", got)
	}
}
