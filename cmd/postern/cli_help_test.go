package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// runCLI runs one command in-process with no configuration and returns
// its exit code and output streams.
func runCLI(args ...string) (int, string, string) {
	var out, errs bytes.Buffer
	c := &cli{stdin: strings.NewReader(""), stdout: &out, stderr: &errs}
	code := c.run(context.Background(), args)
	return code, out.String(), errs.String()
}

// TestVersionSpellings: --version, -version and version all print the
// version, as people type whichever they know from other tools.
func TestVersionSpellings(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		if code, out, errs := runCLI(arg); code != 0 || out != "postern "+version+"\n" || errs != "" {
			t.Errorf("postern %s: exit %d, stdout %q, stderr %q", arg, code, out, errs)
		}
	}
}

// TestHelpSaysWhatRuns: the top-level help describes the demo as what it
// runs, and serve and init name the configuration file they read without -c.
func TestHelpSaysWhatRuns(t *testing.T) {
	_, out, _ := runCLI("--help")
	if !strings.Contains(out, "embedded IMAP, POP3 and CalDAV/CardDAV servers") || strings.Contains(out, "an embedded IMAP server") {
		t.Errorf("top-level help on the demo:\n%s", out)
	}
	for _, cmd := range []string{"serve", "init"} {
		code, out, _ := runCLI(cmd, "--help")
		if code != 0 || !strings.Contains(out, "$POSTERN_CONFIG, else /etc/postern/postern.toml") {
			t.Errorf("postern %s --help does not name its default file (exit %d):\n%s", cmd, code, out)
		}
	}
}
