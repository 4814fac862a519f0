package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
)

type harness struct {
	t    *testing.T
	dir  string
	conf string
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "postern.toml")
	body := "data_dir = \"" + filepath.Join(dir, "data") + "\"\nkey_file = \"" + filepath.Join(dir, "keys", "postern.key") + "\"\n"
	if err := os.WriteFile(conf, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return &harness{t: t, dir: dir, conf: conf}
}

// run executes one command in-process; stdin feeds --password-stdin.
func (h *harness) run(stdin string, args ...string) (code int, stdout, stderr string) {
	h.t.Helper()
	var out, errb bytes.Buffer
	c := &cli{stdin: strings.NewReader(stdin), stdout: &out, stderr: &errb,
		isTerminal: func() bool { return false },
		readSecret: func(string) (string, error) { h.t.Fatal("prompted without a terminal"); return "", nil }}
	code = c.run(context.Background(), append(args, "-c", h.conf))
	return code, out.String(), errb.String()
}

func (h *harness) mustRun(stdin string, args ...string) string {
	h.t.Helper()
	code, out, errs := h.run(stdin, args...)
	if code != 0 {
		h.t.Fatalf("postern %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

func TestInitCreatesPrivateKeyOutsideData(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	key := filepath.Join(h.dir, "keys", "postern.key")
	st, err := os.Stat(key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %04o, want 0600", st.Mode().Perm())
	}
	before, _ := os.ReadFile(key)
	if out := h.mustRun("", "init"); !strings.Contains(out, "already exists") {
		t.Fatalf("second init: %q", out)
	}
	after, _ := os.ReadFile(key)
	if !bytes.Equal(before, after) {
		t.Fatal("second init replaced the key file")
	}
}

func TestRefusesStoreWithoutUsableKeyFile(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	key := filepath.Join(h.dir, "keys", "postern.key")
	if err := os.Chmod(key, 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs := h.run("", "user", "list")
	if code == 0 || !strings.Contains(errs, "chmod 600") {
		t.Fatalf("world-readable key: exit %d, %q", code, errs)
	}
	if err := os.Remove(key); err != nil {
		t.Fatal(err)
	}
	code, _, errs = h.run("", "init")
	if code == 0 || !strings.Contains(errs, "exists but its key file") {
		t.Fatalf("init with a store and no key: exit %d, %q", code, errs)
	}
	if _, err := os.Stat(key); err == nil {
		t.Fatal("init created new keys for an existing store")
	}
}

var grouped = regexp.MustCompile(`^[a-z]{4}( [a-z]{4}){5}\n$`)

func TestUserAndAppPasswordTour(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	h.mustRun("correct horse battery\n", "user", "add", "Alice", "--password-stdin", "--email", "alice@example.org")
	if code, _, errs := h.run("correct horse battery\n", "user", "add", "alice", "--password-stdin"); code == 0 || !strings.Contains(errs, "exists") {
		t.Fatalf("duplicate user: exit %d, %q", code, errs)
	}
	secret := h.mustRun("", "app-password", "create", "alice", "--name", "Thunderbird on laptop", "--scope", "imap,pop3")
	if !grouped.MatchString(secret) {
		t.Fatalf("secret %q is not alone on its line in groups of four", secret)
	}
	listing := h.mustRun("", "app-password", "list", "alice", "--json")
	var list []map[string]any
	if err := json.Unmarshal([]byte(listing), &list); err != nil {
		t.Fatalf("list --json: %v\n%s", err, listing)
	}
	if len(list) != 1 || list[0]["name"] != "Thunderbird on laptop" {
		t.Fatalf("listing %v", list)
	}
	plain := strings.ReplaceAll(strings.TrimSpace(secret), " ", "")
	if strings.Contains(listing, plain) || strings.Contains(listing, strings.TrimSpace(secret)) || strings.Contains(listing, "digest") {
		t.Fatal("listing reveals the secret or its digest")
	}
	id := list[0]["id"].(string)
	h.mustRun("", "app-password", "revoke", "alice", id)
	if code, _, _ := h.run("", "app-password", "revoke", "alice", id); code == 0 {
		t.Fatal("second revoke succeeded")
	}
	users := h.mustRun("", "user", "list", "--json")
	if !strings.Contains(users, `"name": "alice"`) || strings.Contains(users, "argon2") {
		t.Fatalf("user list: %s", users)
	}
	h.mustRun("", "user", "disable", "alice")
	if show := h.mustRun("", "user", "show", "alice"); !strings.Contains(show, "disabled") {
		t.Fatalf("show after disable: %s", show)
	}
	audit := h.mustRun("", "audit", "tail", "--json")
	for _, kind := range []string{"user.create", "apppw.create", "apppw.revoke", "user.disable"} {
		if !strings.Contains(audit, kind) {
			t.Errorf("audit lacks %s", kind)
		}
	}
	if strings.Contains(audit, plain) || strings.Contains(audit, "correct horse") {
		t.Fatal("audit log holds a secret")
	}
	h.mustRun("", "audit", "verify")
}

func TestPasswordNeverFromPromptWithoutTerminal(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	code, _, errs := h.run("", "user", "add", "bob")
	if code != 2 || !strings.Contains(errs, "--password-stdin") {
		t.Fatalf("exit %d, %q", code, errs)
	}
	if code, _, errs := h.run("short\n", "user", "add", "bob", "--password-stdin"); code == 0 || !strings.Contains(errs, "8 to 1024") {
		t.Fatalf("short password: exit %d, %q", code, errs)
	}
}

func TestPolicyAndBackupCode(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	h.mustRun("correct horse battery\n", "user", "add", "carol", "--password-stdin")
	h.mustRun("", "policy", "mfa", "on", "--grace-until", "30d")
	var p map[string]any
	if err := json.Unmarshal([]byte(h.mustRun("", "policy", "show", "--json")), &p); err != nil || p["mfa_required"] != true || p["grace_until"] == nil {
		t.Fatalf("policy %v %v", p, err)
	}
	// An admin code is only for users whose two-step verification is on.
	if code, _, errs := h.run("", "backup-code", "issue", "carol"); code == 0 || !strings.Contains(errs, "two-step") {
		t.Fatalf("backup-code for user without factor: exit %d %q", code, errs)
	}
	h.mustRun("", "policy", "mfa", "off")
}

func TestCheckConfigNamesMisspelledKeyWithLine(t *testing.T) {
	h := newHarness(t)
	bad := filepath.Join(h.dir, "bad.toml")
	os.WriteFile(bad, []byte("data_dir = \"/x\"\n\n[imap]\nlisten_tsl = \":993\"\n"), 0o600)
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out}
	if code := c.run(context.Background(), []string{"check-config", "-c", bad}); code != 1 {
		t.Fatalf("exit %d", code)
	}
	if !strings.Contains(out.String(), "bad.toml:4:1: imap.listen_tsl") {
		t.Fatalf("output %q", out.String())
	}
}

func TestUnknownCommandAndUsage(t *testing.T) {
	var out bytes.Buffer
	c := &cli{stdout: &out, stderr: &out}
	if code := c.run(context.Background(), []string{"frobnicate"}); code != 2 || !strings.Contains(out.String(), "unknown command") {
		t.Fatalf("exit %d %q", code, out.String())
	}
	out.Reset()
	if code := c.run(context.Background(), []string{"app-password", "create"}); code != 2 || !strings.Contains(out.String(), "USER") {
		t.Fatalf("exit %d %q", code, out.String())
	}
}

// TestW4_InitCreatesAdminWithRandomPassword: no default credentials; the
// first admin's password is random, printed once alone on its line, and
// works; a second init creates and prints nothing.
func TestW4_InitCreatesAdminWithRandomPassword(t *testing.T) {
	passwords := map[string]bool{}
	for range 2 {
		h := newHarness(t)
		out := h.mustRun("", "init")
		lines := strings.Split(strings.TrimRight(out, "\n"), "\n")
		pw := lines[len(lines)-1]
		if !regexp.MustCompile(`^[A-Z2-7]{26}$`).MatchString(pw) || !strings.Contains(lines[len(lines)-2], "admin") {
			t.Fatalf("init output:\n%s", out)
		}
		passwords[pw] = true
		show := h.mustRun("", "user", "show", "admin", "--json")
		if !strings.Contains(show, `"role": "admin"`) {
			t.Fatalf("admin user: %s", show)
		}
		if again := h.mustRun("", "init"); strings.Contains(again, pw) || strings.Contains(again, "created user") {
			t.Fatalf("second init: %s", again)
		}
		keys, err := authstore.LoadKeyFile(filepath.Join(h.dir, "keys", "postern.key"))
		if err != nil {
			t.Fatal(err)
		}
		st, err := authstore.Open(filepath.Join(h.dir, "data", "postern.db"), authstore.Options{Keys: keys})
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Authenticate(context.Background(), authstore.Attempt{Protocol: authstore.Web, Username: "admin", Secret: pw})
		st.Close()
		if err != nil {
			t.Fatalf("the printed password does not sign in: %v", err)
		}
	}
	if len(passwords) != 2 {
		t.Error("two inits gave the same password")
	}
}

func TestUserAddRoleAdmin(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	h.mustRun("correct horse battery\n", "user", "add", "root2", "--role", "admin", "--password-stdin")
	if show := h.mustRun("", "user", "show", "root2", "--json"); !strings.Contains(show, `"role": "admin"`) {
		t.Fatalf("show: %s", show)
	}
}
