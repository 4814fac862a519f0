package main

import (
	"context"
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

// subcommands dispatches `postern NOUN VERB …`.
// `postern NOUN --help` lists the verbs; each verb's --help its flags.
func subcommands(noun string, args []string, verbs map[string]func([]string) error) error {
	if len(args) == 0 || verbs[args[0]] == nil {
		names := make([]string, 0, len(verbs))
		for v := range verbs {
			names = append(names, v)
		}
		line := fmt.Sprintf("postern %s %s", noun, strings.Join(sortStrings(names), "|"))
		if len(args) > 0 && isHelp(args[0]) {
			return helpText(fmt.Sprintf("Usage: %s\n\n`postern %s VERB --help` lists a verb's flags.\n", line, noun))
		}
		return fmt.Errorf("%w: %s", errUsage, line)
	}
	return verbs[args[0]](args[1:])
}

func isHelp(arg string) bool {
	return arg == "-h" || arg == "-help" || arg == "--help" || arg == "help"
}

func (c *cli) userCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("user", args, map[string]func([]string) error{
		"add":               func(a []string) error { return c.userAdd(ctx, a) },
		"list":              func(a []string) error { return c.userList(ctx, a) },
		"show":              func(a []string) error { return c.userShow(ctx, a) },
		"passwd":            func(a []string) error { return c.userPasswd(ctx, a) },
		"disable":           func(a []string) error { return c.userSimple(ctx, "disable", a) },
		"enable":            func(a []string) error { return c.userSimple(ctx, "enable", a) },
		"delete":            func(a []string) error { return c.userSimple(ctx, "delete", a) },
		"upstream-password": func(a []string) error { return c.userUpstream(ctx, a) },
	})
}

func (c *cli) userAdd(ctx context.Context, args []string) error {
	fs := newFlags("user add")
	load := configFlag(fs)
	role := fs.String("role", "user", "user or admin")
	display := fs.String("display", "", "display name")
	email := fs.String("email", "", "email address")
	stdin := fs.Bool("password-stdin", false, "read the password from stdin")
	noPassword := fs.Bool("no-password", false, "create without an account password (a running server sets a random one, printed once)")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	pw := ""
	if !*noPassword {
		if pw, err = c.readPassword(*stdin, true); err != nil {
			return err
		}
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		u, generated, err := st.CreateUser(ctx, authstore.NewUser{Name: pos[0], Display: *display, Email: *email,
			Role: authstore.Role(*role), Password: pw})
		if err != nil {
			return err
		}
		if generated != "" {
			fmt.Fprintf(c.stderr, "created %s %s (id %s); the server set this account password, shown only now:\n", u.Role, u.Name, u.ID)
			fmt.Fprintln(c.stdout, generated)
			return nil
		}
		fmt.Fprintf(c.stdout, "created %s %s (id %s)\n", u.Role, u.Name, u.ID)
		return nil
	})
}

func (c *cli) userList(ctx context.Context, args []string) error {
	fs := newFlags("user list")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		users, err := st.ListUsers(ctx)
		if err != nil || *asJSON {
			return orJSON(c, err, users)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "NAME\tROLE\tSTATE\tTWO-STEP\tCREATED")
		for _, u := range users {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", safetext.Show(u.Name), u.Role, state(u), mfaWord(u.MFA), u.Created.Format(time.DateOnly))
		}
		return tw.Flush()
	})
}

func orJSON(c *cli, err error, v any) error {
	if err != nil {
		return err
	}
	return c.printJSON(v)
}

func state(u authstore.User) string {
	if u.Disabled {
		return "disabled"
	}
	return "active"
}

func mfaWord(m authstore.MFAStatus) string {
	switch {
	case m.Enabled:
		return "on (" + m.Source + ")"
	case m.Pending:
		return "enrolling"
	default:
		return "off"
	}
}

func (c *cli) userShow(ctx context.Context, args []string) error {
	fs := newFlags("user show")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		u, err := st.GetUser(ctx, pos[0])
		if err != nil || *asJSON {
			return orJSON(c, err, u)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "name\t%s\nid\t%s\nrole\t%s\nstate\t%s\npassword\t%t\nupstream password\t%t\ntwo-step\t%s\nbackup codes left\t%d\ncreated\t%s\n",
			safetext.Show(u.Name), u.ID, u.Role, state(u), u.HasPassword, u.HasUpstreamPassword, mfaWord(u.MFA), u.MFA.BackupRemaining, u.Created.Format(time.RFC3339))
		return tw.Flush()
	})
}

func (c *cli) userPasswd(ctx context.Context, args []string) error {
	fs := newFlags("user passwd")
	load := configFlag(fs)
	stdin := fs.Bool("password-stdin", false, "read the password from stdin")
	revoke := fs.Bool("revoke-app-passwords", false, "also revoke every app password of the user")
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	pw, err := c.readPassword(*stdin, true)
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		if err := st.SetPassword(ctx, pos[0], pw, *revoke); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "password changed for %s\n", pos[0])
		return nil
	})
}

func (c *cli) userSimple(ctx context.Context, verb string, args []string) error {
	fs := newFlags("user " + verb)
	load := configFlag(fs)
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		var err error
		switch verb {
		case "disable":
			err = st.SetDisabled(ctx, pos[0], true)
		case "enable":
			err = st.SetDisabled(ctx, pos[0], false)
		case "delete":
			err = st.DeleteUser(ctx, pos[0])
		}
		if err == nil {
			fmt.Fprintf(c.stdout, "%sd %s\n", strings.TrimSuffix(verb, "e"), pos[0])
		}
		return err
	})
}

// userUpstream sets or clears the password postern logs in upstream with
// for a user (upstream login = "stored"). Like an account password it
// comes from stdin or a prompt, never a flag, and is never printed.
func (c *cli) userUpstream(ctx context.Context, args []string) error {
	fs := newFlags("user upstream-password")
	load := configFlag(fs)
	stdin := fs.Bool("password-stdin", false, "set: read the upstream password from stdin")
	pos, err := parse(fs, args, "set|clear", "NAME")
	if err != nil {
		return err
	}
	verb, name := pos[0], pos[1]
	pw := ""
	switch {
	case verb == "set":
		if pw, err = c.readSecretFor("Upstream password", *stdin, true); err != nil {
			return err
		}
	case verb != "clear" || *stdin:
		return fmt.Errorf("%w: postern user upstream-password set NAME [--password-stdin] | clear NAME", errUsage)
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		if verb == "clear" {
			if err := st.ClearUpstreamPassword(ctx, name); err != nil {
				return err
			}
			fmt.Fprintf(c.stdout, "upstream password cleared for %s\n", name)
			return nil
		}
		if err := st.SetUpstreamPassword(ctx, name, pw); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "upstream password set for %s\n", name)
		return nil
	})
}
