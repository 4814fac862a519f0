package main

import (
	"context"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

func (c *cli) sessionsCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("sessions", args, map[string]func([]string) error{
		"list": func(a []string) error { return c.sessionsList(ctx, a) },
		"kill": func(a []string) error { return c.sessionsKill(ctx, a) },
	})
}

func (c *cli) sessionsList(ctx context.Context, args []string) error {
	fs := newFlags("sessions list")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	user := fs.String("user", "", "only this user's sessions")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withServer(ctx, load, func(ctx context.Context, st backend) error {
		list, err := st.Sessions(ctx, *user)
		if err != nil || *asJSON {
			return orJSON(c, err, list)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tUSER\tPROTO\tCREDENTIAL\tSOURCE\tCLIENT\tSTARTED\tIN\tOUT")
		for _, s := range list {
			cred := "account password"
			if s.AppPasswordID != "" {
				cred = fmt.Sprintf("%s (%s)", safetext.Show(s.AppPasswordName), s.AppPasswordID)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", safetext.Show(s.ID), safetext.Show(s.User), s.Protocol, cred, s.Remote,
				orDash(safetext.Show(s.Client)), day(s.Started), bytesWord(s.BytesIn), bytesWord(s.BytesOut))
		}
		return tw.Flush()
	})
}

func bytesWord(n int64) string {
	switch {
	case n >= 10<<20:
		return strconv.FormatInt(n>>20, 10) + " MiB"
	case n >= 10<<10:
		return strconv.FormatInt(n>>10, 10) + " KiB"
	}
	return strconv.FormatInt(n, 10) + " B"
}

func (c *cli) sessionsKill(ctx context.Context, args []string) error {
	fs := newFlags("sessions kill")
	load := configFlag(fs)
	user := fs.String("user", "", "end every session of this user")
	want := []string{"ID"}
	if hasFlag(args, "user") {
		want = nil
	}
	pos, err := parse(fs, args, want...)
	if err != nil {
		return err
	}
	return withServer(ctx, load, func(ctx context.Context, st backend) error {
		if *user != "" {
			n, err := st.EndUserSessions(ctx, *user)
			return done(c, err, "ended %d sessions of %s", n, *user)
		}
		return done(c, st.EndSession(ctx, pos[0]), "ended session %s", pos[0])
	})
}

// hasFlag reports whether args set the flag name (-name or --name, with
// or without =value), before flag parsing decides how many positional
// arguments a command takes.
func hasFlag(args []string, name string) bool {
	for _, a := range args {
		for _, p := range []string{"-" + name, "--" + name} {
			if a == p || len(a) > len(p) && a[:len(p)+1] == p+"=" {
				return true
			}
		}
	}
	return false
}

func (c *cli) tokenCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("token", args, map[string]func([]string) error{
		"create": func(a []string) error { return c.tokenCreate(ctx, a) },
		"list":   func(a []string) error { return c.tokenList(ctx, a) },
		"revoke": func(a []string) error { return c.tokenRevoke(ctx, a) },
	})
}

func (c *cli) tokenCreate(ctx context.Context, args []string) error {
	fs := newFlags("token create")
	load := configFlag(fs)
	role := fs.String("role", "admin", "admin, or user (acts as --user on the self-service routes)")
	user := fs.String("user", "", "the user a role-user token acts as")
	expires := expiresFlag(fs)
	pos, err := parse(fs, args, "NAME")
	if err != nil {
		return err
	}
	exp, err := expires()
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		tok, secret, err := st.CreateToken(ctx, authstore.NewToken{Name: pos[0], Role: authstore.Role(*role), User: *user, Expires: exp})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "API token %q (id %s, role %s); it is shown only now:\n", tok.Name, tok.ID, tok.Role)
		fmt.Fprintln(c.stdout, secret)
		return nil
	})
}

func (c *cli) tokenList(ctx context.Context, args []string) error {
	fs := newFlags("token list")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		list, err := st.ListTokens(ctx)
		if err != nil || *asJSON {
			return orJSON(c, err, list)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tROLE\tUSER\tCREATED\tEXPIRES")
		for _, t := range list {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", t.ID, safetext.Show(t.Name), t.Role, orDash(safetext.Show(t.User)), day(t.Created), orDash(day(t.Expires)))
		}
		return tw.Flush()
	})
}

func (c *cli) tokenRevoke(ctx context.Context, args []string) error {
	fs := newFlags("token revoke")
	load := configFlag(fs)
	pos, err := parse(fs, args, "ID")
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		return done(c, st.RevokeToken(ctx, pos[0]), "revoked token %s", pos[0])
	})
}
