package proxy

import (
	"context"
	"errors"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// authFunc is an Authenticator of one function.
type authFunc func(context.Context, authstore.Attempt) (authstore.Grant, error)

func (f authFunc) Authenticate(ctx context.Context, a authstore.Attempt) (authstore.Grant, error) {
	return f(ctx, a)
}

// TestAdmitSkeleton: the login skeleton every front-end runs refuses a
// name with CR, LF or NUL before asking anyone (P4), refuses a granted
// name with one, answers what the store could not decide as unavailable,
// and refuses to register a session that a kick since Admit matches.
func TestAdmitSkeleton(t *testing.T) {
	ctx := context.Background()
	grantAs := func(name string) authFunc {
		return func(context.Context, authstore.Attempt) (authstore.Grant, error) {
			return authstore.Grant{UserID: "u1", Username: name, AppPassID: "a1", AppPassName: "phone"}, nil
		}
	}
	t.Run("raw name", func(t *testing.T) {
		asked := false
		_, err := Admit(ctx, NewRegistry(), authFunc(func(context.Context, authstore.Attempt) (authstore.Grant, error) {
			asked = true
			return authstore.Grant{}, nil
		}), authstore.Attempt{Username: "alice\r\nx DELETE INBOX", Secret: "pw"})
		if !errors.Is(err, errUserControl) || asked {
			t.Errorf("Admit = %v, authenticator asked: %t", err, asked)
		}
	})
	t.Run("granted name", func(t *testing.T) {
		_, err := Admit(ctx, NewRegistry(), grantAs("alice\x00"), authstore.Attempt{Username: "alice", Secret: "pw"})
		if !errors.Is(err, errUserControl) || !errors.Is(err, authstore.ErrUnauthorized) {
			t.Errorf("Admit = %v", err)
		}
	})
	t.Run("undecided", func(t *testing.T) {
		_, err := Admit(ctx, NewRegistry(), authFunc(func(context.Context, authstore.Attempt) (authstore.Grant, error) {
			return authstore.Grant{}, context.Canceled
		}), authstore.Attempt{Username: "alice", Secret: "pw"})
		if !errors.Is(err, authstore.ErrUnavailable) || errors.Is(err, authstore.ErrUnauthorized) {
			t.Errorf("Admit = %v", err)
		}
	})
	admitAlice := func(t *testing.T, reg *Registry) *Admission {
		t.Helper()
		ad, err := Admit(ctx, reg, grantAs("alice"), authstore.Attempt{Username: "alice", Secret: "ap"})
		if err != nil {
			t.Fatal(err)
		}
		return ad
	}
	t.Run("kicked during the login", func(t *testing.T) {
		reg := NewRegistry()
		ad := admitAlice(t, reg)
		reg.Kick(Filter{Username: "alice"}, "")
		if _, err := ad.Track(SessionInfo{ID: "r1"}, func(string) {}); !errors.Is(err, errKickedDuringLogin) || !errors.Is(err, authstore.ErrUnauthorized) {
			t.Errorf("Track after a kick = %v", err)
		}
	})
	t.Run("registered", func(t *testing.T) {
		reg := NewRegistry()
		release, err := admitAlice(t, reg).Track(SessionInfo{ID: "r1", Protocol: authstore.CalDAV}, func(string) {})
		if err != nil {
			t.Fatal(err)
		}
		defer release()
		got := reg.List()
		want := SessionInfo{ID: "r1", Username: "alice", UserID: "u1", CredentialID: "a1", AppPassName: "phone", Protocol: authstore.CalDAV}
		if len(got) != 1 || got[0] != want {
			t.Errorf("registered %+v, want %+v", got, want)
		}
	})
}
