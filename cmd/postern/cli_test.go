package main

import (
	"regexp"
	"strings"
	"testing"
)

// TestEveryCommandHelp: `--help` on every command and every verb prints
// its usage and flags on stdout and exits 0. The verbs are read from each
// command's own help, so a new verb is covered without touching the test.
func TestEveryCommandHelp(t *testing.T) {
	h := newHarness(t)
	var c cli
	verbsLine := regexp.MustCompile("Usage: postern \\S+ ([a-z-]+(?:\\|[a-z-]+)*)\n\n`postern \\S+ VERB --help`")
	for _, cmd := range c.commands() {
		code, out, errs := h.run("", cmd.name, "--help")
		if code != 0 || errs != "" {
			t.Errorf("postern %s --help: exit %d, stderr %q", cmd.name, code, errs)
			continue
		}
		m := verbsLine.FindStringSubmatch(out)
		if m == nil {
			checkFlagHelp(t, []string{cmd.name}, out)
			continue
		}
		for _, verb := range strings.Split(m[1], "|") {
			code, out, errs := h.run("", cmd.name, verb, "--help")
			if code != 0 || errs != "" {
				t.Errorf("postern %s %s --help: exit %d, stderr %q", cmd.name, verb, code, errs)
				continue
			}
			checkFlagHelp(t, []string{cmd.name, verb}, out)
		}
	}
}

func checkFlagHelp(t *testing.T, words []string, out string) {
	t.Helper()
	line := "postern " + strings.Join(words, " ")
	if !strings.HasPrefix(out, "Usage: "+line) {
		t.Errorf("%s --help: no usage line in %q", line, out)
	}
	if strings.HasSuffix(out, "No flags.\n") {
		return
	}
	if !strings.Contains(out, "Flags:\n") || !strings.Contains(out, "  -") {
		t.Errorf("%s --help lists no flags: %q", line, out)
	}
	if strings.Contains(out, "help requested") {
		t.Errorf("%s --help: %q", line, out)
	}
}

func TestSessionsNeedARunningServer(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	for _, args := range [][]string{{"sessions", "list"}, {"sessions", "kill", "abc"}, {"sessions", "kill", "--user", "alice"}} {
		code, out, errs := h.run("", args...)
		if code != 1 || out != "" || !strings.Contains(errs, "no postern server is running") {
			t.Errorf("%v without a server: exit %d, stdout %q, stderr %q", args, code, out, errs)
		}
	}
	if code, _, errs := h.run("", "sessions", "kill"); code != 2 {
		t.Errorf("sessions kill without an id: exit %d, %q", code, errs)
	}
}

// TestTokenWithoutServer: tokens are store data, so they work with no
// server too; the secret is alone on its stdout line and listed nowhere.
func TestTokenWithoutServer(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	out := h.mustRun("", "token", "create", "ci", "--expires", "90d")
	secret := strings.TrimSuffix(out, "\n")
	if !regexp.MustCompile(`^pst_[A-Za-z0-9]+$`).MatchString(secret) {
		t.Fatalf("token create printed %q, want the token alone on its line", out)
	}
	list := h.mustRun("", "token", "list", "--json")
	if strings.Contains(list, secret) || !strings.Contains(list, `"name": "ci"`) {
		t.Fatalf("token list: %s", list)
	}
	id := regexp.MustCompile(`"id": "([^"]+)"`).FindStringSubmatch(list)[1]
	h.mustRun("", "token", "revoke", id)
	if list := h.mustRun("", "token", "list", "--json"); strings.Contains(list, id) {
		t.Fatalf("revoked token still listed: %s", list)
	}
}
