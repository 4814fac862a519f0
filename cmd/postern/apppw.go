package main

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

func sortStrings(s []string) []string { sort.Strings(s); return s }

func (c *cli) appPasswordCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("app-password", args, map[string]func([]string) error{
		"create": func(a []string) error { return c.appPwCreate(ctx, a) },
		"list":   func(a []string) error { return c.appPwList(ctx, a) },
		"revoke": func(a []string) error { return c.appPwRevoke(ctx, a) },
	})
}

func (c *cli) appPwCreate(ctx context.Context, args []string) error {
	fs := newFlags("app-password create")
	load := configFlag(fs)
	name := fs.String("name", "", "what the password is for (\"Thunderbird on laptop\")")
	scope := fs.String("scope", "", "protocols: imap,pop3,smtp,caldav,carddav,activesync (default all)")
	expires := expiresFlag(fs)
	pos, err := parse(fs, args, "USER")
	if err != nil {
		return err
	}
	if *name == "" {
		return fmt.Errorf("%w: --name is required", errUsage)
	}
	scopes, err := authstore.ParseScopes(*scope)
	if err != nil {
		return err
	}
	exp, err := expires()
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		ap, secret, err := st.CreateAppPassword(ctx, pos[0], authstore.NewAppPassword{Name: *name, Scopes: scopes, Expires: exp})
		if err != nil {
			return err
		}
		fmt.Fprintf(c.stderr, "app password %q (id %s) for %s, scopes %s; it is shown only now:\n",
			ap.Name, ap.ID, ap.User, joinScopes(ap.Scopes))
		fmt.Fprintln(c.stdout, secret)
		return nil
	})
}

func joinScopes(ps []authstore.Protocol) string {
	s := make([]string, len(ps))
	for i, p := range ps {
		s[i] = string(p)
	}
	return strings.Join(s, ",")
}

func (c *cli) appPwList(ctx context.Context, args []string) error {
	fs := newFlags("app-password list")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	pos, err := parse(fs, args, "USER")
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		list, err := st.ListAppPasswords(ctx, pos[0])
		if err != nil || *asJSON {
			return orJSON(c, err, list)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "ID\tNAME\tSCOPES\tCREATED\tEXPIRES\tLAST USED\tLAST IP\tSTATE")
		for _, a := range list {
			st := "active"
			if !a.Revoked.IsZero() {
				st = "revoked " + day(a.Revoked)
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.ID, safetext.Show(a.Name), joinScopes(a.Scopes), day(a.Created),
				orDash(day(a.Expires)), orDash(day(a.LastUsed)), orDash(safetext.Show(a.LastIP)), st)
		}
		return tw.Flush()
	})
}

func day(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Local().Format("2006-01-02 15:04")
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (c *cli) appPwRevoke(ctx context.Context, args []string) error {
	fs := newFlags("app-password revoke")
	load := configFlag(fs)
	pos, err := parse(fs, args, "USER", "ID")
	if err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		if err := st.RevokeAppPassword(ctx, pos[0], pos[1]); err != nil {
			return err
		}
		fmt.Fprintf(c.stdout, "revoked app password %s of %s\n", pos[1], pos[0])
		return nil
	})
}
