package main

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

// crashApp is one app password the loop created.
type crashApp struct {
	id, secret string
	revoked    bool // acknowledged
	revoking   bool // a revocation was in flight at a kill
	checked    bool // its state was checked by a login after a restart
}

// crashApps is the app passwords of one user, created and revoked over
// the admin API.
type crashApps struct {
	user string
	mu   sync.Mutex
	byID map[string]*crashApp
	live []string
	// creating counts creations in flight at a kill; the store may hold
	// that many app passwords nobody was told about: strangers.
	creating  int
	strangers map[string]bool
}

// churn keeps about five app passwords live: it creates one, or revokes
// the oldest.
func (a *crashApps) churn(ctx context.Context, c *apiClient, stats *crashStats) error {
	for ctx.Err() == nil {
		a.mu.Lock()
		revoke := len(a.live) >= 5
		a.mu.Unlock()
		var err error
		if revoke {
			err = a.revokeOldest(ctx, c, stats)
		} else {
			err = a.create(ctx, c, stats)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (a *crashApps) create(ctx context.Context, c *apiClient, stats *crashStats) error {
	ans, err := c.call("POST", userPath(a.user, "/app-passwords"), map[string]string{"name": "crash loop"}, "", "")
	if err != nil {
		a.mu.Lock()
		a.creating++
		a.mu.Unlock()
		inFlight(ctx, stats)
		return nil
	}
	var out struct {
		AppPassword authstore.AppPassword `json:"app_password"`
		Secret      string                `json:"secret"`
	}
	if ans.status != http.StatusOK || ans.decode(&out) != nil || out.Secret == "" {
		return fmt.Errorf("create app password: %d %s", ans.status, ans.body)
	}
	a.mu.Lock()
	a.byID[out.AppPassword.ID] = &crashApp{id: out.AppPassword.ID, secret: strings.ReplaceAll(out.Secret, " ", "")}
	a.live = append(a.live, out.AppPassword.ID)
	a.mu.Unlock()
	stats.add(&stats.created)
	return nil
}

func (a *crashApps) revokeOldest(ctx context.Context, c *apiClient, stats *crashStats) error {
	a.mu.Lock()
	app := a.byID[a.live[0]]
	a.live = a.live[1:]
	app.revoking = true
	a.mu.Unlock()
	ans, err := c.call("DELETE", userPath(a.user, "/app-passwords/", app.id), nil, "", "")
	if err != nil {
		inFlight(ctx, stats)
		return nil
	}
	if ans.status != http.StatusNoContent {
		return fmt.Errorf("revoke app password %s: %d %s", app.id, ans.status, ans.body)
	}
	a.mu.Lock()
	app.revoking, app.revoked, app.checked = false, true, false
	a.mu.Unlock()
	stats.add(&stats.revoked)
	return nil
}

// verify compares the store's list with what was acknowledged and logs in
// with every app password whose state was not yet checked by a login.
func (a *crashApps) verify(t *testing.T, s *served, c *apiClient, stats *crashStats) {
	t.Helper()
	ans, err := c.call("GET", userPath(a.user, "/app-passwords"), nil, "", "")
	var list struct {
		AppPasswords []authstore.AppPassword `json:"app_passwords"`
	}
	if err != nil || ans.status != http.StatusOK || ans.decode(&list) != nil {
		t.Fatalf("list app passwords after a restart: %v %d %s", err, ans.status, ans.body)
	}
	stored := map[string]authstore.AppPassword{}
	for _, ap := range list.AppPasswords {
		stored[ap.ID] = ap
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	for id := range stored {
		if a.byID[id] == nil {
			a.strangers[id] = true
		}
	}
	if len(a.strangers) > a.creating {
		t.Errorf("the store holds %d app passwords nobody was told about, but only %d creations were in flight at a kill", len(a.strangers), a.creating)
	}
	var revoked, live []*crashApp
	for _, app := range a.byID {
		a.settle(t, app, stored)
		switch {
		case app.checked:
		case app.revoked:
			revoked = append(revoked, app)
		default:
			live = append(live, app)
		}
	}
	// A refused login costs a password hash's worth of time; the store's
	// list above covers every app password on every restart, and a few
	// logins each time show that the list is what the decision reads.
	for _, app := range append(revoked[:min(len(revoked), 2)], live[:min(len(live), 2)]...) {
		a.login(t, s, app, stats)
	}
}

// settle checks one app password against the store's list.
func (a *crashApps) settle(t *testing.T, app *crashApp, stored map[string]authstore.AppPassword) {
	t.Helper()
	ap, ok := stored[app.id]
	switch {
	case !ok:
		t.Errorf("acknowledged app password %s is gone after a restart", app.id)
		return
	case app.revoking:
		app.revoking, app.revoked = false, !ap.Revoked.IsZero()
		if !app.revoked {
			a.live = append(a.live, app.id)
		}
	case app.revoked && ap.Revoked.IsZero():
		t.Errorf("acknowledged revocation of app password %s is undone after a restart", app.id)
	case !app.revoked && !ap.Revoked.IsZero():
		t.Errorf("app password %s is revoked after a restart, but no revocation was sent", app.id)
	}
}

// login checks an app password's state by logging in with it.
func (a *crashApps) login(t *testing.T, s *served, app *crashApp, stats *crashStats) {
	t.Helper()
	app.checked = true
	got := s.imapTry(t, a.user, app.secret)
	switch {
	case app.revoked && got != imapFailure:
		t.Errorf("revoked app password %s after a restart: %q, want %q", app.id, got, imapFailure)
	case app.revoked:
		stats.add(&stats.revokedRefused)
	case !strings.HasPrefix(got, "a OK"):
		t.Errorf("live app password %s after a restart: %q, want a OK", app.id, got)
	}
}
