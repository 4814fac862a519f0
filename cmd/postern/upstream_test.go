package main

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// TestUpstreamPasswordWithoutServer: with no server running the command
// sets and clears the stored upstream password on the store itself; the
// password comes from stdin or a prompt, never a flag, and is not printed.
func TestUpstreamPasswordWithoutServer(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	h.mustRun("alice-password\n", "user", "add", "alice", "--password-stdin")
	if code, _, errs := h.run("", "user", "upstream-password", "set", "alice"); code != 2 || !strings.Contains(errs, "--password-stdin") {
		t.Errorf("set without stdin or a terminal: exit %d, %q", code, errs)
	}
	if code, _, _ := h.run("", "user", "upstream-password", "set", "alice", "--password", "x"); code != 2 {
		t.Errorf("a --password flag was accepted: exit %d", code)
	}
	const secret = "upstream side secret"
	if out := h.mustRun(secret+"\n", "user", "upstream-password", "set", "alice", "--password-stdin"); out != "upstream password set for alice\n" {
		t.Errorf("set printed %q", out)
	}
	if got := h.storedUpstream(t, "alice"); got != secret {
		t.Errorf("stored %q, want %q", got, secret)
	}
	if out := h.mustRun("", "user", "show", "alice"); !strings.Contains(out, "upstream password  true") || strings.Contains(out, secret) {
		t.Errorf("user show:\n%s", out)
	}
	if code, _, _ := h.run("", "user", "upstream-password", "clear", "alice", "--password-stdin"); code != 2 {
		t.Errorf("clear --password-stdin: exit %d, want a usage error", code)
	}
	h.mustRun("", "user", "upstream-password", "clear", "alice")
	if got := h.storedUpstream(t, "alice"); got != "" {
		t.Errorf("still stored after clear: %q", got)
	}
	if code, _, errs := h.run("x\n", "user", "upstream-password", "set", "nobody", "--password-stdin"); code != 1 || !strings.Contains(errs, "not found") {
		t.Errorf("unknown user: exit %d, %q", code, errs)
	}
}

// storedUpstream reads a user's upstream password from the store; "" when
// none is set.
func (h *harness) storedUpstream(t *testing.T, user string) string {
	t.Helper()
	cfg, err := config.Read(h.conf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	pw, err := st.UpstreamPassword(context.Background(), user)
	if errors.Is(err, authstore.ErrNotFound) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	return pw
}
