package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/postern-dev/postern/agefile"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// storeRotate is what changing the backups' recipients asks for: a fresh
// backup for the configured recipients, then, once confirmed, the
// scheduled backups made for other recipients are deleted.
func (c *cli) storeRotate(ctx context.Context, args []string) error {
	fs := newFlags("store rotate")
	load := configFlag(fs)
	yes := fs.Bool("yes", false, "delete the backups made for other recipients without asking")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if cfg.Backup.Dir == "" || len(cfg.Backup.Recipients) == 0 {
		return errors.New("rotate works on the scheduled backups: set [backup] dir and recipients first")
	}
	lk := agefile.Lock{Recipients: cfg.Backup.Recipients}
	fp := agefile.Fingerprint(lk.Recipients)
	if err := os.MkdirAll(cfg.Backup.Dir, 0o700); err != nil {
		return err
	}
	path := newBackupPath(cfg.Backup.Dir, fp)
	if _, err := writeBackup(ctx, cfg, path, lk); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s for the configured recipients [%s]\n", path, fp)
	return c.deleteOtherBackups(cfg.Backup.Dir, fp, *yes)
}

func (c *cli) deleteOtherBackups(dir, fp string, yes bool) error {
	all, err := listBackups(dir)
	if err != nil {
		return err
	}
	var old []dirBackup
	for _, b := range all {
		if b.fingerprint != fp {
			old = append(old, b)
		}
	}
	if len(old) == 0 {
		fmt.Fprintf(c.stdout, "no backups for other recipients in %s\n", dir)
		return nil
	}
	fmt.Fprintf(c.stdout, "%d backup(s) in %s were made for other recipients:\n", len(old), dir)
	for _, b := range old {
		fmt.Fprintf(c.stdout, "  %s\n", filepath.Base(b.path))
	}
	if !yes {
		if !c.isTerminal() {
			return errors.New("kept them; run again with --yes to delete them")
		}
		answer, err := c.readSecret(fmt.Sprintf("Type yes to delete these %d backup(s): ", len(old)))
		if err != nil || strings.TrimSpace(answer) != "yes" {
			return errors.New("not confirmed; kept them")
		}
	}
	for _, b := range old {
		if err := os.Remove(b.path); err != nil {
			return err
		}
	}
	fmt.Fprintf(c.stdout, "deleted %d backup(s); copies kept elsewhere still open with their old keys\n", len(old))
	return nil
}

func (c *cli) keyCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("key", args, map[string]func([]string) error{
		"export": func(a []string) error { return c.keyExport(a) },
		"import": func(a []string) error { return c.keyImport(a) },
	})
}

// keyExport writes the key file as its own age file under its own
// passphrase: it is never inside a backup, and a backup without it
// reveals no secret.
func (c *cli) keyExport(args []string) error {
	fs := newFlags("key export")
	load := configFlag(fs)
	out := fs.String("out", "", "write the encrypted key file to this new `file`")
	passFile := fs.String("passphrase-file", "", "read the passphrase from the first line of this private `file` (never a flag)")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: postern key export --out FILE", errUsage)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if _, err := authstore.LoadKeyFile(cfg.KeyFile); err != nil {
		return err
	}
	data, err := os.ReadFile(cfg.KeyFile)
	if err != nil {
		return err
	}
	lk, err := c.lock(&lockFlags{passFile: passFile}, nil, "the key file")
	if err != nil {
		return err
	}
	err = agefile.WriteNew(*out, func(w io.Writer) error {
		enc, err := agefile.Encrypt(w, lk)
		if err != nil {
			return err
		}
		if _, err := enc.Write(data); err != nil {
			return err
		}
		return enc.Close()
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: the key file, under its own passphrase; keep it apart from the backups\n", *out)
	return nil
}

// keyImport puts an exported key file back at key_file, refusing to
// replace one that exists.
func (c *cli) keyImport(args []string) error {
	fs := newFlags("key import")
	load := configFlag(fs)
	in := fs.String("in", "", "the exported key `file`")
	passFile := fs.String("passphrase-file", "", "read the passphrase from the first line of this private `file`")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return fmt.Errorf("%w: postern key import --in FILE", errUsage)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	key, err := c.openKey("", *passFile)
	if err != nil {
		return err
	}
	f, err := os.Open(*in)
	if err != nil {
		return err
	}
	defer f.Close()
	plain, err := agefile.Decrypt(f, key)
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	data, err := io.ReadAll(io.LimitReader(plain, 1<<20))
	if err != nil {
		return fmt.Errorf("%s: %w", *in, err)
	}
	if _, err := authstore.ParseKeyFile(data, *in); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(cfg.KeyFile), 0o700); err != nil {
		return err
	}
	if err := agefile.WriteNew(cfg.KeyFile, func(w io.Writer) error { _, err := w.Write(data); return err }); err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote the key file %s (mode 0600)\n", cfg.KeyFile)
	return nil
}

// auditExport writes events as JSON Lines, oldest first: an archive
// before retention prunes them.
func (c *cli) auditExport(ctx context.Context, a []string) error {
	fs := newFlags("audit export")
	load := configFlag(fs)
	since := fs.String("since", "", "only events at or after this `time`: a date (2027-01-31), an RFC 3339 time, or a duration ago (30d)")
	until := fs.String("until", "", "only events before this `time`, written as for --since")
	if _, err := parse(fs, a); err != nil {
		return err
	}
	var f authstore.AuditFilter
	var err error
	if f.Since, err = agoWhen(*since); err != nil {
		return err
	}
	if f.Until, err = agoWhen(*until); err != nil {
		return err
	}
	enc := json.NewEncoder(c.stdout)
	return withBackend(ctx, load, func(ctx context.Context, st backend) error {
		return st.ExportAudit(ctx, f, func(ev authstore.Event) error { return enc.Encode(ev) })
	})
}

// agoWhen reads a point in the past: a duration back from now ("30d") or
// a date or time as parseWhen takes them.
func agoWhen(s string) (time.Time, error) {
	if d, err := config.ParseDuration(s); err == nil && s != "" {
		return time.Now().Add(-d.Duration), nil
	}
	return parseWhen(s, time.Now())
}

// ExportAudit reads the server's JSON Lines export.
func (c *controlClient) ExportAudit(ctx context.Context, f authstore.AuditFilter, fn func(authstore.Event) error) error {
	q := url.Values{}
	if !f.Since.IsZero() {
		q.Set("since", f.Since.Format(time.RFC3339))
	}
	if !f.Until.IsZero() {
		q.Set("until", f.Until.Format(time.RFC3339))
	}
	resp, err := c.open(ctx, "GET", "/audit/export?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	dec := json.NewDecoder(resp.Body)
	for {
		var ev authstore.Event
		if err := dec.Decode(&ev); errors.Is(err, io.EOF) {
			return nil
		} else if err != nil {
			return err
		}
		if err := fn(ev); err != nil {
			return err
		}
	}
}
