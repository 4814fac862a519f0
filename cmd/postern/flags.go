package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"

	"github.com/postern-dev/postern/config"
)

// newFlags makes a FlagSet whose errors come back instead of exiting.
func newFlags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	return fs
}

// helpText is what --help prints on stdout; the command then exits 0.
type helpText string

func (h helpText) Error() string { return string(h) }

// flagHelp describes a command: its usage line and every flag.
func flagHelp(fs *flag.FlagSet, positional []string) helpText {
	var b strings.Builder
	fmt.Fprintf(&b, "Usage: postern %s", fs.Name())
	for _, p := range positional {
		b.WriteString(" " + p)
	}
	n := 0
	fs.VisitAll(func(*flag.Flag) { n++ })
	if n == 0 {
		return helpText(b.String() + "\n\nNo flags.\n")
	}
	b.WriteString(" [flags]\n\nFlags:\n")
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return helpText(b.String())
}

// parse accepts flags before, between and after positional arguments
// (`app-password create alice --name Phone`) and checks the count.
func parse(fs *flag.FlagSet, args []string, positional ...string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); errors.Is(err, flag.ErrHelp) {
			return nil, flagHelp(fs, positional)
		} else if err != nil {
			return nil, fmt.Errorf("%w: %v", errUsage, err)
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
	if len(pos) != len(positional) {
		return nil, fmt.Errorf("%w: postern %s %s", errUsage, fs.Name(), strings.Join(positional, " "))
	}
	return pos, nil
}

// defaultConfig is the configuration file of a command without -c or
// $POSTERN_CONFIG.
const (
	defaultConfig      = "/etc/postern/postern.toml"
	defaultConfigWords = "$POSTERN_CONFIG, else " + defaultConfig + " when it exists, else the built-in defaults"
)

// configOnly reads the arguments of a command whose only flag is -c, and
// loads that configuration.
func configOnly(name string, args []string) (*config.Config, error) {
	fs := newFlags(name)
	load := configFlag(fs)
	if _, err := parse(fs, args); err != nil {
		return nil, err
	}
	return load()
}

// configFlag adds -c and returns a loader for it. Without an explicit file,
// a missing default file means "use the defaults" so a fresh machine works.
// The loader decodes strictly but does not Validate: store commands need
// only data_dir and key_file; serve validates the whole file itself.
func configFlag(fs *flag.FlagSet) func() (*config.Config, error) {
	path := fs.String("c", "", "configuration `file` (default "+defaultConfigWords+")")
	return func() (*config.Config, error) {
		p, explicit := *path, *path != ""
		if !explicit {
			p = os.Getenv("POSTERN_CONFIG")
			explicit = p != ""
		}
		if !explicit {
			p = defaultConfig
			if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) {
				return config.Default(), nil
			}
		}
		return config.Read(p)
	}
}

// readPassword takes a password from stdin (--password-stdin) or a
// terminal prompt; never from a flag, where it would land in shell history.
func (c *cli) readPassword(fromStdin bool, confirm bool) (string, error) {
	return c.readSecretFor("Password", fromStdin, confirm)
}

// readSecretFor is readPassword with the prompt naming what is asked for.
func (c *cli) readSecretFor(what string, fromStdin bool, confirm bool) (string, error) {
	if fromStdin {
		data, err := io.ReadAll(io.LimitReader(c.stdin, 64*1024))
		if err != nil {
			return "", err
		}
		return strings.TrimRight(string(data), "\r\n"), nil
	}
	if !c.isTerminal() {
		return "", fmt.Errorf("%w: no terminal to prompt on; pipe the password with --password-stdin", errUsage)
	}
	pw, err := c.readSecret(what + ": ")
	if err != nil || !confirm {
		return pw, err
	}
	again, err := c.readSecret("Again: ")
	if err != nil {
		return "", err
	}
	if again != pw {
		return "", errors.New("the passwords do not match")
	}
	return pw, nil
}

func stdinIsTerminal() bool { return term.IsTerminal(int(os.Stdin.Fd())) }

func promptSecret(prompt string) (string, error) {
	fmt.Fprint(os.Stderr, prompt)
	b, err := term.ReadPassword(int(os.Stdin.Fd()))
	fmt.Fprintln(os.Stderr)
	return string(b), err
}

// expiresFlag adds --expires and returns its reader.
func expiresFlag(fs *flag.FlagSet) func() (time.Time, error) {
	s := fs.String("expires", "", "expiry: a duration (90d) or a date (default never)")
	return func() (time.Time, error) { return parseWhen(*s, time.Now()) }
}

// parseWhen reads an expiry or date: a duration from now ("90d", "12h") or
// a date ("2027-01-31") or RFC 3339 time.
func parseWhen(s string, now time.Time) (time.Time, error) {
	if s == "" {
		return time.Time{}, nil
	}
	if d, err := config.ParseDuration(s); err == nil {
		return now.Add(d.Duration), nil
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is neither a duration (90d, 12h) nor a date (2027-01-31)", errUsage, s)
}
