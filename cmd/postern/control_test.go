package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/admin"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
)

// serveControl runs the admin API on the harness's control socket, with
// the store open here, as `postern serve` holds it.
func (h *harness) serveControl() *authstore.Store {
	h.t.Helper()
	return h.serveControlWith(proxy.NewRegistry())
}

// serveControlWith is serveControl with the live sessions of reg.
func (h *harness) serveControlWith(reg *proxy.Registry) *authstore.Store {
	h.t.Helper()
	h.mustRun("", "init")
	cfg, err := config.Read(h.conf)
	if err != nil {
		h.t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		h.t.Fatal(err)
	}
	srv, err := admin.New(admin.Config{Store: st, Sessions: reg})
	if err != nil {
		h.t.Fatal(err)
	}
	ln, err := srv.ListenControl(controlPath(cfg))
	if err != nil {
		h.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.ServeControl(ctx, ln) }()
	h.t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			h.t.Errorf("control socket: %v", err)
		}
		st.Close()
	})
	return st
}

// TestCommandsThroughTheControlSocket runs every store command while the
// store is held open by a server: each one must go through the socket
// (opening the store would time out on its lock) and do what it does
// without a server.
func TestCommandsThroughTheControlSocket(t *testing.T) {
	h := newHarness(t)
	st := h.serveControl()
	h.mustRun("alice-password\n", "user", "add", "alice", "--password-stdin", "--display", "Alice")
	if out := h.mustRun("", "user", "list"); !regexp.MustCompile(`alice\s+user\s+active\s+off`).MatchString(out) {
		t.Errorf("user list: %s", out)
	}
	var u authstore.User
	if err := json.Unmarshal([]byte(h.mustRun("", "user", "show", "alice", "--json")), &u); err != nil || u.Display != "Alice" || !u.HasPassword {
		t.Errorf("user show --json: %+v, %v", u, err)
	}
	h.mustRun("new-alice-password\n", "user", "passwd", "alice", "--password-stdin")
	h.mustRun("", "user", "disable", "alice")
	if out := h.mustRun("", "user", "show", "alice"); !strings.Contains(out, "disabled") {
		t.Errorf("after disable: %s", out)
	}
	h.mustRun("", "user", "enable", "alice")

	secret := strings.TrimSpace(h.mustRun("", "app-password", "create", "alice", "--name", "Phone", "--scope", "imap", "--expires", "30d"))
	if !regexp.MustCompile(`^[a-z]{4}( [a-z]{4}){5}$`).MatchString(secret) {
		t.Fatalf("app-password create printed %q", secret)
	}
	list := h.mustRun("", "app-password", "list", "alice", "--json")
	var aps []authstore.AppPassword
	if err := json.Unmarshal([]byte(list), &aps); err != nil || len(aps) != 1 || aps[0].Name != "Phone" || aps[0].Expires.IsZero() {
		t.Fatalf("app-password list: %s (%v)", list, err)
	}
	h.mustRun("", "app-password", "revoke", "alice", aps[0].ID)
	if out := h.mustRun("", "app-password", "list", "alice"); !strings.Contains(out, "revoked") {
		t.Errorf("after revoke: %s", out)
	}

	if out := h.mustRun("", "mfa", "status", "alice"); !strings.Contains(out, "two-step verification off") {
		t.Errorf("mfa status: %s", out)
	}
	enroll(t, st, "alice")
	if out := h.mustRun("", "mfa", "status", "alice"); !strings.Contains(out, "two-step verification on (self), 5 backup codes left") {
		t.Errorf("mfa status: %s", out)
	}
	code := strings.TrimSpace(h.mustRun("", "backup-code", "issue", "alice", "--ttl", "1h"))
	if !regexp.MustCompile(`^\d{4} \d{4} \d{4}$`).MatchString(code) {
		t.Errorf("backup-code issue printed %q", code)
	}
	h.mustRun("", "mfa", "disable", "alice")
	enroll(t, st, "alice")
	h.mustRun("", "mfa", "reset", "alice")
	if out := h.mustRun("", "mfa", "status", "alice", "--json"); !strings.Contains(out, `"enabled": false`) {
		t.Errorf("mfa status after reset: %s", out)
	}
	h.mustRun("", "policy", "mfa", "on", "--grace-until", "30d")
	var p authstore.Policy
	if err := json.Unmarshal([]byte(h.mustRun("", "policy", "show", "--json")), &p); err != nil || !p.MFARequired || p.GraceUntil.IsZero() {
		t.Errorf("policy show: %+v %v", p, err)
	}
	h.mustRun("", "policy", "mfa", "off")

	tok := strings.TrimSpace(h.mustRun("", "token", "create", "ci", "--role", "admin"))
	if !strings.HasPrefix(tok, "pst_") {
		t.Errorf("token create printed %q", tok)
	}
	if out := h.mustRun("", "token", "list"); !strings.Contains(out, "ci") || strings.Contains(out, tok) {
		t.Errorf("token list: %s", out)
	}
	if out := h.mustRun("", "sessions", "list", "--json"); strings.TrimSpace(out) != "[]" {
		t.Errorf("sessions list: %q", out)
	}
	if out := h.mustRun("", "sessions", "kill", "--user", "alice"); !strings.Contains(out, "ended 0 sessions") {
		t.Errorf("sessions kill --user: %s", out)
	}
	if code, _, errs := h.run("", "sessions", "kill", "nonexistent"); code != 1 || !strings.Contains(errs, "no such live session") {
		t.Errorf("killing an unknown session: exit %d, %s", code, errs)
	}

	tail := h.mustRun("", "audit", "tail", "-n", "200", "--json")
	var evs []authstore.Event
	if err := json.Unmarshal([]byte(tail), &evs); err != nil || len(evs) < 10 {
		t.Fatalf("audit tail: %d events, %v", len(evs), err)
	}
	for i := 1; i < len(evs); i++ {
		if evs[i].Seq <= evs[i-1].Seq {
			t.Fatalf("audit tail not oldest first: %d after %d", evs[i].Seq, evs[i-1].Seq)
		}
	}
	if last := evs[len(evs)-1]; !strings.HasPrefix(last.Actor, "cli:") {
		t.Errorf("last event's actor %q", last.Actor)
	}
	if strings.Contains(tail, tok) || strings.Contains(tail, code) {
		t.Error("a secret is in the audit log")
	}
	if out := h.mustRun("", "audit", "verify"); !strings.Contains(out, "audit chain intact") {
		t.Errorf("audit verify: %s", out)
	}
	h.mustRun("", "user", "delete", "alice")
	if code, _, errs := h.run("", "user", "show", "alice"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("show after delete: exit %d, %s", code, errs)
	}
}

// enroll turns on two-step verification for user, as its owner would.
func enroll(t *testing.T, st *authstore.Store, user string) {
	t.Helper()
	ctx := authstore.WithActor(context.Background(), authstore.Actor{Name: "self:" + user})
	enr, err := st.BeginTOTP(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	code, err := totp.GenerateCode(enr.Secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.ConfirmTOTP(ctx, user, code); err != nil {
		t.Fatal(err)
	}
}

// TestUserAddThroughTheSocketWithoutPassword: a running server sets a
// random password and the command prints it once, alone on its line.
func TestUserAddThroughTheSocketWithoutPassword(t *testing.T) {
	h := newHarness(t)
	h.serveControl()
	code, out, errs := h.run("", "user", "add", "bob", "--no-password", "--role", "admin")
	if code != 0 || !regexp.MustCompile(`^[A-Z2-7]{26}\n$`).MatchString(out) || !strings.Contains(errs, "shown only now") {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, out, errs)
	}
}
