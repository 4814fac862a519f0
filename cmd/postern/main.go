// Command postern is the authentication gateway's command line: it runs
// the server and the demo, and manages the credential store.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/postern-dev/postern/internal/safetext"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// cli carries the process's streams so tests can run commands in-process.
type cli struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	// isTerminal reports whether stdin can prompt for a password.
	isTerminal func() bool
	readSecret func(prompt string) (string, error)
}

type command struct {
	name, args, help string
	run              func(ctx context.Context, c *cli, args []string) error
}

func (c *cli) commands() []command {
	return []command{
		{"serve", "[-c FILE]", "run the gateway", c.serve},
		{"demo", "[--listen ADDR] [--keep]", "run postern in front of embedded IMAP, POP3 and CalDAV/CardDAV servers, with demo users", c.demo},
		{"init", "[-c FILE]", "create the data directory, the key file and the store", c.initCmd},
		{"check-config", "[-c FILE]", "validate a configuration file", c.checkConfig},
		{"version", "", "print the version (also --version)", c.versionCmd},
		{"user", "add|list|show|passwd|disable|enable|delete …", "manage accounts", c.userCmd},
		{"app-password", "create|list|revoke …", "manage app passwords", c.appPasswordCmd},
		{"mfa", "status|reset|disable USER", "manage a user's two-step verification", c.mfaCmd},
		{"backup-code", "issue USER [--ttl 72h]", "issue one single-use code for a locked-out user", c.backupCodeCmd},
		{"policy", "mfa on|off [--grace-until DATE] | show", "the organisation's two-step policy", c.policyCmd},
		{"audit", "tail [-n N] [--json] | verify | export [--since T]", "read, check and archive the audit log", c.auditCmd},
		{"sessions", "list [--json] | kill ID | kill --user USER", "live sessions of the running server", c.sessionsCmd},
		{"store", "backup --out FILE | restore --in FILE | rotate", "encrypted backups of the store, and restoring one", c.storeCmd},
		{"key", "export --out FILE | import --in FILE", "the key file, encrypted on its own", c.keyCmd},
		{"token", "create NAME [--role R] [--user U] [--expires 90d] | list | revoke ID", "admin API tokens", c.tokenCmd},
	}
}

func main() {
	c := &cli{stdin: os.Stdin, stdout: os.Stdout, stderr: os.Stderr, isTerminal: stdinIsTerminal, readSecret: promptSecret}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := c.run(ctx, os.Args[1:])
	stop()
	os.Exit(code)
}

// errUsage marks an error whose message is a usage line.
var errUsage = errors.New("usage")

// exitError carries a specific exit code (check-config prints its own).
type exitError int

func (e exitError) Error() string { return fmt.Sprintf("exit %d", int(e)) }

func (c *cli) run(ctx context.Context, args []string) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args[0] = "version" // what people type first, as in most tools
	}
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		c.usage(c.stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, cmd := range c.commands() {
		if cmd.name != args[0] {
			continue
		}
		err := cmd.run(ctx, c, args[1:])
		var ee exitError
		var help helpText
		switch {
		case err == nil:
			return 0
		case errors.As(err, &help):
			fmt.Fprint(c.stdout, string(help))
			return 0
		case errors.As(err, &ee):
			return int(ee)
		case errors.Is(err, errUsage):
			fmt.Fprintf(c.stderr, "postern %s: %v\n", cmd.name, err)
			return 2
		default:
			// A server's answer may quote what a client chose.
			fmt.Fprintf(c.stderr, "postern %s: %s\n", cmd.name, safetext.Show(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(c.stderr, "postern: unknown command %q\n\n", args[0])
	c.usage(c.stderr)
	return 2
}

func (c *cli) usage(w io.Writer) {
	fmt.Fprintln(w, "postern: two-step verification in front of mail and calendar servers")
	fmt.Fprintln(w, "\nUsage:")
	for _, cmd := range c.commands() {
		fmt.Fprintf(w, "  postern %-13s %-45s %s\n", cmd.name, cmd.args, cmd.help)
	}
	fmt.Fprintln(w, "\nEvery command that reads the store takes -c FILE (default "+defaultConfigWords+").")
}

func (c *cli) versionCmd(ctx context.Context, _ *cli, args []string) error {
	fs := newFlags("version")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	fmt.Fprintln(c.stdout, "postern", version)
	return nil
}
