package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/agefile"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/internal/safetext"
)

func (c *cli) storeCmd(ctx context.Context, _ *cli, args []string) error {
	return subcommands("store", args, map[string]func([]string) error{
		"backup":  func(a []string) error { return c.storeBackup(ctx, a) },
		"restore": func(a []string) error { return c.storeRestore(ctx, a) },
		"rotate":  func(a []string) error { return c.storeRotate(ctx, a) },
	})
}

// lockFlags are the ways to encrypt a new file: --recipient (repeatable)
// or --passphrase-file; with neither, the configuration's recipients or a
// passphrase typed at a prompt (twice).
type lockFlags struct {
	recipients []string
	passFile   *string
}

func addLockFlags(fs *flag.FlagSet, what string) *lockFlags {
	l := &lockFlags{}
	fs.Func("recipient", "encrypt "+what+" to this age public `key` (age1…); repeatable", func(s string) error {
		l.recipients = append(l.recipients, s)
		return nil
	})
	l.passFile = fs.String("passphrase-file", "", "read the passphrase from the first line of this private `file` (never a flag)")
	return l
}

// lock decides how to encrypt; fallback are recipients to use when the
// command line names none (nil for files that must take a passphrase).
func (c *cli) lock(l *lockFlags, fallback []string, what string) (agefile.Lock, error) {
	var lk agefile.Lock
	switch {
	case len(l.recipients) > 0 && *l.passFile != "":
		return lk, fmt.Errorf("%w: give --recipient or --passphrase-file, not both", errUsage)
	case len(l.recipients) > 0:
		lk.Recipients = l.recipients
	case *l.passFile != "":
		p, err := agefile.ReadPassphraseFile(*l.passFile)
		if err != nil {
			return lk, err
		}
		lk.Passphrase = p
	case len(fallback) > 0:
		lk.Recipients = fallback
	case !c.isTerminal():
		return lk, fmt.Errorf("%w: no terminal to prompt on; give --passphrase-file or --recipient", errUsage)
	default:
		p, err := c.readSecretFor("Passphrase for "+what, false, true)
		if err != nil {
			return lk, err
		}
		lk.Passphrase = p
	}
	return lk, lk.Check()
}

func (c *cli) storeBackup(ctx context.Context, args []string) error {
	fs := newFlags("store backup")
	load := configFlag(fs)
	out := fs.String("out", "", "write the backup to this new `file` (an age file)")
	lf := addLockFlags(fs, "the backup")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *out == "" {
		return fmt.Errorf("%w: postern store backup --out FILE", errUsage)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	lk, err := c.lock(lf, cfg.Backup.Recipients, "the backup")
	if err != nil {
		return err
	}
	info, err := writeBackup(ctx, cfg, *out, lk)
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdout, "wrote %s: the store as of %s (audit event %d), %s encrypted; the key file is not in it\n",
		*out, info.Time.Local().Format(time.DateTime), info.Seq, lockWords(lk))
	return nil
}

func lockWords(lk agefile.Lock) string {
	if lk.Passphrase != "" {
		return "passphrase"
	}
	return fmt.Sprintf("%d recipient(s) [%s]", len(lk.Recipients), agefile.Fingerprint(lk.Recipients))
}

// writeBackup writes a new backup file at out: through the running server
// when its control socket answers, else from the store opened here.
func writeBackup(ctx context.Context, cfg *config.Config, out string, lk agefile.Lock) (info authstore.BackupInfo, err error) {
	err = agefile.WriteNew(out, func(w io.Writer) error {
		ctl, err := dialControl(ctx, controlPath(cfg))
		switch {
		case err == nil:
			info, err = ctl.backup(ctx, w, lk)
			return err
		case !errors.Is(err, errNoServer):
			return err
		}
		st, err := openStore(cfg)
		if err != nil {
			return err
		}
		info, err = directBackup(authstore.WithActor(ctx, authstore.Actor{Name: cliActor()}), st, w, lk)
		return errors.Join(err, st.Close())
	})
	return info, err
}

func directBackup(ctx context.Context, st *authstore.Store, w io.Writer, lk agefile.Lock) (authstore.BackupInfo, error) {
	enc, err := agefile.Encrypt(w, lk)
	if err != nil {
		return authstore.BackupInfo{}, err
	}
	info, err := st.Backup(ctx, enc, backupDetail(lk))
	if err != nil {
		return info, err
	}
	return info, enc.Close()
}

// backupDetail is what the audit log says of a backup's lock: never the
// passphrase, only that there was one, or which recipients.
func backupDetail(lk agefile.Lock) string {
	if lk.Passphrase != "" {
		return "passphrase"
	}
	return "recipients=" + agefile.Fingerprint(lk.Recipients)
}

// backup asks the server for a copy. Under a passphrase, the server
// encrypts to a one-time key of this process, which re-encrypts the
// stream in memory: the passphrase never leaves here, the plaintext never
// reaches a disk or the socket.
func (c *controlClient) backup(ctx context.Context, w io.Writer, lk agefile.Lock) (authstore.BackupInfo, error) {
	recipients, dst := lk.Recipients, w
	var reKey agefile.Key
	var enc io.WriteCloser
	if lk.Passphrase != "" {
		r, k, err := agefile.OneTime()
		if err != nil {
			return authstore.BackupInfo{}, err
		}
		recipients, reKey = []string{r}, k
		if enc, err = agefile.Encrypt(w, lk); err != nil {
			return authstore.BackupInfo{}, err
		}
		dst = enc
	}
	info, err := c.streamBackup(ctx, recipients, func(body io.Reader) error {
		if enc == nil {
			_, err := io.Copy(dst, body)
			return err
		}
		plain, err := agefile.Decrypt(body, reKey)
		if err == nil {
			_, err = io.Copy(dst, plain)
		}
		return err
	})
	if err == nil && enc != nil {
		err = enc.Close()
	}
	return info, err
}

// streamBackup posts the request and hands the answer's body to read; the
// copy is good only if the server's trailer says so after the last byte.
func (c *controlClient) streamBackup(ctx context.Context, recipients []string, read func(io.Reader) error) (authstore.BackupInfo, error) {
	var info authstore.BackupInfo
	resp, err := c.open(ctx, "POST", "/store/backup", api.BackupRequest{Recipients: recipients})
	if err != nil {
		return info, err
	}
	defer resp.Body.Close()
	if err := read(resp.Body); err != nil {
		return info, fmt.Errorf("backup stream from %s: %w", c.sock, err)
	}
	if resp.Trailer.Get(api.BackupStatus) != "ok" {
		return info, fmt.Errorf("the server on %s failed to finish the backup (see its log)", c.sock)
	}
	err = json.Unmarshal([]byte(resp.Trailer.Get(api.BackupInfo)), &info)
	return info, err
}

func (c *cli) storeRestore(ctx context.Context, args []string) error {
	fs := newFlags("store restore")
	load := configFlag(fs)
	in := fs.String("in", "", "the backup `file` to restore")
	identity := fs.String("identity", "", "open a backup made for recipients with this age identity `file`")
	passFile := fs.String("passphrase-file", "", "open a passphrase backup with the first line of this private `file`")
	noReplay := fs.Bool("no-replay", false, "restore the backup exactly: re-apply nothing taken away after it (names what that brings back)")
	asJSON := fs.Bool("json", false, "print the report as JSON")
	if _, err := parse(fs, args); err != nil {
		return err
	}
	if *in == "" {
		return fmt.Errorf("%w: postern store restore --in FILE [--identity FILE | --passphrase-file FILE]", errUsage)
	}
	cfg, err := load()
	if err != nil {
		return err
	}
	if ctl, err := dialControl(ctx, controlPath(cfg)); err == nil {
		ctl.api.HTTP.CloseIdleConnections()
		return fmt.Errorf("postern serve is running (its control socket answers on %s): stop it first; nothing was changed", controlPath(cfg))
	}
	key, err := c.openKey(*identity, *passFile)
	if err != nil {
		return err
	}
	rep, err := c.restore(ctx, cfg, *in, key, *noReplay)
	if err != nil {
		return fmt.Errorf("%w; the store at %s was not changed", err, storePath(cfg))
	}
	if *asJSON {
		return c.printJSON(rep)
	}
	c.printRestore(rep, storePath(cfg))
	return nil
}

// openKey reads what opens a backup: an identity file, a passphrase file,
// or a passphrase typed once at a prompt.
func (c *cli) openKey(identity, passFile string) (agefile.Key, error) {
	switch {
	case identity != "" && passFile != "":
		return agefile.Key{}, fmt.Errorf("%w: give --identity or --passphrase-file, not both", errUsage)
	case identity != "":
		data, err := agefile.ReadPrivateFile(identity)
		return agefile.Key{Identities: data}, err
	case passFile != "":
		p, err := agefile.ReadPassphraseFile(passFile)
		return agefile.Key{Passphrase: p}, err
	case !c.isTerminal():
		return agefile.Key{}, fmt.Errorf("%w: no terminal to prompt on; give --passphrase-file or --identity", errUsage)
	}
	p, err := c.readSecretFor("Backup passphrase", false, false)
	return agefile.Key{Passphrase: p}, err
}

func (c *cli) restore(ctx context.Context, cfg *config.Config, in string, key agefile.Key, noReplay bool) (*authstore.RestoreReport, error) {
	if _, err := os.Stat(cfg.KeyFile); errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("the key file %s is missing: put back the one the backup was made with (`postern key import --in FILE`); a new one cannot open it", cfg.KeyFile)
	}
	keys, err := authstore.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		return nil, err
	}
	f, err := os.Open(in)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	plain, err := agefile.Decrypt(f, key)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in, err)
	}
	ctx = authstore.WithActor(ctx, authstore.Actor{Name: cliActor()})
	return authstore.Restore(ctx, authstore.RestoreOptions{Options: storeOptions(cfg, keys), Path: storePath(cfg),
		Backup: plain, NoReplay: noReplay, Confirm: c.confirmNoReplay})
}

// confirmNoReplay names what --no-replay brings back before the store is
// replaced, and asks when there is a terminal to ask on.
func (c *cli) confirmNoReplay(rep *authstore.RestoreReport) error {
	if rep.Old != authstore.OldSkipped || len(rep.Reapplied) == 0 {
		return nil
	}
	fmt.Fprintf(c.stderr, "WARNING: --no-replay brings back %d change(s) taken away after the backup:\n", len(rep.Reapplied))
	c.printChanges(c.stderr, rep.Reapplied)
	if !c.isTerminal() {
		return nil
	}
	answer, err := c.readSecret("Type yes to restore anyway: ")
	if err != nil || strings.TrimSpace(answer) != "yes" {
		return errors.New("not confirmed")
	}
	return nil
}

func (c *cli) printChanges(w io.Writer, cs []authstore.Change) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	for _, ch := range cs {
		when := "-"
		if !ch.Time.IsZero() {
			when = ch.Time.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\n", when, orDash(safetext.Show(ch.User)), safetext.Show(ch.What))
	}
	tw.Flush()
}

func (c *cli) printRestore(rep *authstore.RestoreReport, path string) {
	w := c.stdout
	fmt.Fprintf(w, "restored %s from the backup of %s (audit event %d)\n", path, rep.Backup.Time.Local().Format(time.DateTime), rep.Backup.Seq)
	switch rep.Old {
	case authstore.OldReplayed:
		fmt.Fprintf(w, "re-applied %d change(s) taken away after the backup, from the replaced store's audit log:\n", len(rep.Reapplied))
		c.printChanges(w, rep.Reapplied)
		fmt.Fprintf(w, "kept %d later audit event(s); the chain goes on unbroken\n", rep.Carried)
	case authstore.OldSkipped:
		fmt.Fprintf(w, "--no-replay: brought back %d change(s) taken away after the backup (listed above)\n", len(rep.Reapplied))
	default:
		why := map[string]string{authstore.OldNone: "there was no store to replace",
			authstore.OldUnread:    "the store being replaced could not be read: " + rep.OldError,
			authstore.OldUnrelated: "the store being replaced " + rep.OldError}[rep.Old]
		fmt.Fprintf(w, "nothing could be re-applied: %s\n", safetext.Show(why))
		c.printBackupAppPasswords(rep)
	}
	if len(rep.Lost) > 0 {
		fmt.Fprintf(w, "made after the backup and not in it (%d); tell the users concerned:\n", len(rep.Lost))
		c.printChanges(w, rep.Lost)
	}
	fmt.Fprintf(w, "every two-step code shown before now is refused; %d web session(s) ended\n", rep.WebSessions)
	if rep.Kept != "" {
		fmt.Fprintf(w, "the replaced store is kept as %s; delete it once the restore is confirmed\n", rep.Kept)
	}
}

func (c *cli) printBackupAppPasswords(rep *authstore.RestoreReport) {
	fmt.Fprintf(c.stdout, "app passwords live in the backup (%d); revoke any that were revoked after %s:\n",
		len(rep.AppPasswords), rep.Backup.Time.Local().Format(time.DateTime))
	tw := tabwriter.NewWriter(c.stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  USER\tID\tNAME\tCREATED\tLAST USED")
	for _, ap := range rep.AppPasswords {
		last := "-"
		if !ap.LastUsed.IsZero() {
			last = ap.LastUsed.Local().Format(time.DateTime)
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", safetext.Show(ap.User), ap.ID, safetext.Show(ap.Name), ap.Created.Local().Format(time.DateTime), last)
	}
	tw.Flush()
}
