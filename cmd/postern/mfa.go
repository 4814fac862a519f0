package main

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
)

func (c *cli) mfaCmd(ctx context.Context, _ *cli, args []string) error {
	verb := func(name string, fn func(context.Context, backend, string) error) func([]string) error {
		return func(a []string) error {
			fs := newFlags("mfa " + name)
			load := configFlag(fs)
			asJSON := fs.Bool("json", false, "print JSON (status)")
			pos, err := parse(fs, a, "USER")
			if err != nil {
				return err
			}
			return withBackend(ctx, load, func(ctx context.Context, st backend) error {
				if name == "status" && *asJSON {
					u, err := st.GetUser(ctx, pos[0])
					return orJSON(c, err, u.MFA)
				}
				return fn(ctx, st, pos[0])
			})
		}
	}
	return subcommands("mfa", args, map[string]func([]string) error{
		"status": verb("status", func(ctx context.Context, st backend, user string) error {
			u, err := st.GetUser(ctx, user)
			if err == nil {
				fmt.Fprintf(c.stdout, "%s: two-step verification %s, %d backup codes left\n", safetext.Show(u.Name), mfaWord(u.MFA), u.MFA.BackupRemaining)
			}
			return err
		}),
		"reset": verb("reset", func(ctx context.Context, st backend, user string) error {
			return done(c, st.ResetMFA(ctx, user), "two-step verification reset for %s; they set it up afresh at next sign-in", user)
		}),
		"disable": verb("disable", func(ctx context.Context, st backend, user string) error {
			return done(c, st.DisableMFA(ctx, user), "two-step verification switched off for %s", user)
		}),
	})
}

func done(c *cli, err error, format string, args ...any) error {
	if err == nil {
		fmt.Fprintf(c.stdout, format+"\n", args...)
	}
	return err
}

func (c *cli) backupCodeCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("backup-code", args, map[string]func([]string) error{
		"issue": func(a []string) error {
			fs := newFlags("backup-code issue")
			load := configFlag(fs)
			ttl := fs.Duration("ttl", authstore.DefaultAdminCodeTTL, "how long the code stays valid")
			pos, err := parse(fs, a, "USER")
			if err != nil {
				return err
			}
			return withBackend(ctx, load, func(ctx context.Context, st backend) error {
				code, err := st.IssueAdminCode(ctx, pos[0], *ttl)
				if err != nil {
					return err
				}
				fmt.Fprintf(c.stderr, "one-time code for %s, valid until %s; pass it on, it is shown only now:\n",
					pos[0], time.Now().Add(*ttl).Format("2006-01-02 15:04"))
				fmt.Fprintln(c.stdout, code)
				return nil
			})
		},
	})
}

func (c *cli) policyCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("policy", args, map[string]func([]string) error{
		"show": func(a []string) error { return c.policyShow(ctx, a) },
		"mfa":  func(a []string) error { return c.policyMFA(ctx, a) },
	})
}

func (c *cli) policyShow(ctx context.Context, args []string) error {
	fs := newFlags("policy show")
	load := configFlag(fs)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		p, err := st.Policy(ctx)
		if err != nil || *asJSON {
			return orJSON(c, err, p)
		}
		tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintf(tw, "two-step required\t%t\ngrace until\t%s\n", p.MFARequired, orDash(day(p.GraceUntil)))
		return tw.Flush()
	})
}

func (c *cli) policyMFA(ctx context.Context, args []string) error {
	fs := newFlags("policy mfa")
	load := configFlag(fs)
	grace := fs.String("grace-until", "", "until this date, users without two-step may still use their password over mail")
	pos, err := parse(fs, args, "on|off")
	if err != nil {
		return err
	}
	if pos[0] != "on" && pos[0] != "off" {
		return fmt.Errorf("%w: postern policy mfa on|off [--grace-until DATE]", errUsage)
	}
	until, err := parseWhen(*grace, time.Now())
	if err != nil {
		return err
	}
	on := pos[0] == "on"
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		err := st.SetPolicy(ctx, authstore.Policy{MFARequired: on, GraceUntil: until})
		if on && !until.IsZero() {
			return done(c, err, "two-step verification is required; account passwords work over mail until %s", day(until))
		}
		return done(c, err, "two-step verification required: %t", on)
	})
}

func (c *cli) auditCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("audit", args, map[string]func([]string) error{
		"tail": func(a []string) error {
			fs := newFlags("audit tail")
			load := configFlag(fs)
			n := fs.Int("n", 50, "number of events")
			asJSON := fs.Bool("json", false, "print JSON")
			if _, err := parse(fs, a); err != nil {
				return err
			}
			return withBackend(ctx, load, func(ctx context.Context, st backend) error {
				evs, err := st.AuditTail(ctx, *n)
				if err != nil || *asJSON {
					return orJSON(c, err, evs)
				}
				tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "SEQ\tTIME\tKIND\tACTOR\tUSER\tPROTO\tSOURCE\tRESULT\tREASON\tDETAIL")
				for _, e := range evs {
					fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%q\n", e.Seq, e.Time.Local().Format(time.DateTime), safetext.Show(e.Kind),
						orDash(safetext.Show(e.Actor)), orDash(safetext.Show(e.User)), orDash(string(e.Protocol)), orDash(safetext.Show(e.Source)),
						orDash(safetext.Show(e.Result)), orDash(safetext.Show(e.Reason)), e.Detail)
				}
				return tw.Flush()
			})
		},
		"export": func(a []string) error { return c.auditExport(ctx, a) },
		"verify": func(a []string) error {
			fs := newFlags("audit verify")
			load := configFlag(fs)
			if _, err := parse(fs, a); err != nil {
				return err
			}
			return withBackend(ctx, load, func(ctx context.Context, st backend) error {
				n, err := st.VerifyAudit(ctx)
				return done(c, err, "audit chain intact: %d events", n)
			})
		},
	})
}
