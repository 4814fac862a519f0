package proxy

import (
	"context"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fakeclock"
)

// timedStore is a real authstore on the fake clock, wired to reg the way
// serve wires it.
func timedStore(t *testing.T, clk *fakeclock.Clock, reg *Registry) (*authstore.Store, context.Context) {
	t.Helper()
	keys, err := authstore.NewKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	st, err := authstore.Open(filepath.Join(t.TempDir(), "postern.db"), authstore.Options{
		Keys: keys, KDF: authstore.KDFParams{Memory: 1024, Time: 1, Threads: 1}, Clock: clk,
		OnRevoke: func(rv authstore.Revocation) { reg.Revoke(rv) }, OnPolicy: reg.ApplyPolicy,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ctx := authstore.WithActor(context.Background(), authstore.Actor{Name: "test"})
	if _, err := st.CreateUser(ctx, authstore.NewUser{Name: "alice", Password: "correct-horse-battery"}); err != nil {
		t.Fatal(err)
	}
	return st, ctx
}

func appPassword(t *testing.T, ctx context.Context, st *authstore.Store, expires time.Time) string {
	t.Helper()
	_, secret, err := st.CreateAppPassword(ctx, "alice", authstore.NewAppPassword{Name: "phone", Expires: expires})
	if err != nil {
		t.Fatal(err)
	}
	return strings.ReplaceAll(secret, " ", "")
}

// TestA8_GraceDateEndsPasswordSessions: when the organisation's grace
// period ends, a live account-password session ends within a second of the
// date (on the injected clock) and the password no longer logs in, while an
// app-password session goes on. A grace period extended meanwhile counts
// from its new date.
func TestA8_GraceDateEndsPasswordSessions(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	reg := newRegistryWithClock(clk)
	st, ctx := timedStore(t, clk, reg)
	grace := clk.Now().Add(24 * time.Hour)
	if err := st.SetPolicy(ctx, authstore.Policy{MFARequired: true, GraceUntil: grace}); err != nil {
		t.Fatal(err)
	}
	ap := appPassword(t, ctx, st, time.Time{})
	h := newHarness(t, withAuth(st), func(cfg *ServerConfig, h *harness) { cfg.Registry, h.reg = reg, reg })
	pwSession := h.loggedIn("alice", "correct-horse-battery")
	apSession := h.loggedIn("alice", ap)

	// Extended while the session runs: the old date passes harmlessly.
	clk.Advance(time.Hour)
	old := grace
	grace = grace.Add(24 * time.Hour)
	if err := st.SetPolicy(ctx, authstore.Policy{MFARequired: true, GraceUntil: grace}); err != nil {
		t.Fatal(err)
	}
	clk.Advance(old.Sub(clk.Now()))
	pwSession.Write("after the old date\r\n")
	pwSession.ExpectLines("after the old date")

	clk.Advance(grace.Sub(clk.Now()) - time.Millisecond)
	pwSession.Write("still here\r\n")
	pwSession.ExpectLines("still here")
	clk.Advance(time.Millisecond)
	expectEnd(t, pwSession, reasonGraceEnded.Text, time.Now().Add(time.Second))
	apSession.Write("ping\r\n")
	apSession.ExpectLines("ping")

	again := h.dial()
	again.Write("LOGIN alice correct-horse-battery\r\n")
	again.ExpectLines("NO auth")
}

// TestP10_AppPasswordExpiryEndsSessions: an app password's expiry ends its
// live session when it passes, and the next login with it fails.
func TestP10_AppPasswordExpiryEndsSessions(t *testing.T) {
	clk := fakeclock.New(testEpoch)
	reg := newRegistryWithClock(clk)
	st, ctx := timedStore(t, clk, reg)
	expires := clk.Now().Add(90 * 24 * time.Hour)
	short := appPassword(t, ctx, st, expires)
	long := appPassword(t, ctx, st, expires.Add(time.Hour))
	h := newHarness(t, withAuth(st), func(cfg *ServerConfig, h *harness) { cfg.Registry, h.reg = reg, reg })
	shortSession := h.loggedIn("alice", short)
	longSession := h.loggedIn("alice", long)

	clk.Advance(expires.Sub(clk.Now()))
	expectEnd(t, shortSession, reasonExpired.Text, time.Now().Add(time.Second))
	longSession.Write("ping\r\n")
	longSession.ExpectLines("ping")

	again := h.dial()
	again.Write("LOGIN alice " + short + "\r\n")
	again.ExpectLines("NO auth")
}
