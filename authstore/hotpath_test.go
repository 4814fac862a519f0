package authstore

import (
	"errors"
	"testing"
	"time"
)

// TestDecisionCacheNeverOutlivesAChange: after a login filled the cache,
// every change that must refuse the next login does so at once.
func TestDecisionCacheNeverOutlivesAChange(t *testing.T) {
	tests := []struct {
		name   string
		proto  Protocol
		change func(t *testing.T, e *testEnv, apID string)
	}{
		{"revoke", IMAP, func(t *testing.T, e *testEnv, apID string) {
			if err := e.s.RevokeAppPassword(bg, "alice", apID); err != nil {
				t.Fatal(err)
			}
		}},
		{"expiry passes", IMAP, func(t *testing.T, e *testEnv, _ string) { e.clock.Advance(2 * time.Hour) }},
		{"disable", IMAP, func(t *testing.T, e *testEnv, _ string) {
			if err := e.s.SetDisabled(bg, "alice", true); err != nil {
				t.Fatal(err)
			}
		}},
		{"password change revoking app passwords", IMAP, func(t *testing.T, e *testEnv, _ string) {
			if err := e.s.SetPassword(bg, "alice", "another good password", true); err != nil {
				t.Fatal(err)
			}
		}},
		{"delete", IMAP, func(t *testing.T, e *testEnv, _ string) {
			if err := e.s.DeleteUser(bg, "alice"); err != nil {
				t.Fatal(err)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			ap, secret, err := e.s.CreateAppPassword(bg, "alice", NewAppPassword{Name: "phone", Expires: e.clock.Now().Add(time.Hour)})
			if err != nil {
				t.Fatal(err)
			}
			for range 3 { // the second and third are cache hits
				if _, err := e.login("alice", secret, tt.proto, "192.0.2.1"); err != nil {
					t.Fatalf("before the change: %v", err)
				}
			}
			tt.change(t, e, ap.ID)
			if _, err := e.login("alice", secret, tt.proto, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Errorf("after the change: %v, want ErrUnauthorized", err)
			}
		})
	}
}

// TestDecisionCacheFollowsPolicy: enforcing two-step verification refuses
// a cached account-password login at once.
func TestDecisionCacheFollowsPolicy(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	for range 3 {
		if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); err != nil {
			t.Fatalf("before: %v", err)
		}
	}
	if err := e.s.SetPolicy(bg, Policy{MFARequired: true}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("after enforcement: %v, want ErrUnauthorized", err)
	}
	// Two-step verification of the user's own does the same.
	e2 := newTestStore(t)
	e2.addUser(t, "bob")
	for range 3 {
		if _, err := e2.login("bob", goodPassword, CalDAV, "192.0.2.1"); err != nil {
			t.Fatalf("before: %v", err)
		}
	}
	e2.enableTOTP(t, "bob")
	if _, err := e2.login("bob", goodPassword, CalDAV, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("after enabling TOTP: %v, want ErrUnauthorized", err)
	}
}

// TestDecisionCacheScopes: a cached app password keeps its scopes.
func TestDecisionCacheScopes(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, secret := e.addAppPassword(t, "alice", CalDAV)
	for range 3 {
		if _, err := e.login("alice", secret, CalDAV, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		if _, err := e.login("alice", secret, CardDAV, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("CardDAV with a CalDAV-only app password: %v", err)
		}
	}
	if g, err := e.login("alice", secret, DAV, "192.0.2.1"); err != nil || len(g.Scopes) != 1 {
		t.Errorf("DAV discovery: %+v, %v", g, err)
	}
}

// TestCanonicalASCIIAgrees: the ASCII fast path of CanonicalUsername gives
// what the full Unicode path gives, for every name it takes.
func TestCanonicalASCIIAgrees(t *testing.T) {
	names := []string{"alice", "Alice", "ALICE@Example.ORG", "a.b-c_d+e", "x", "~!#$%^&*()", "K", "user00017"}
	for c := byte(0x21); c < 0x7f; c++ {
		names = append(names, "a"+string(c)+"Z")
	}
	for _, n := range names {
		fast, ok := canonicalASCII(n)
		if !ok {
			continue
		}
		slow, err := canonicalFull(n)
		if err != nil || slow != fast {
			t.Errorf("%q: fast path %q, full path %q (%v)", n, fast, slow, err)
		}
	}
}
