package authstore

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"github.com/postern-dev/postern/internal/safetext"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// RestoreOptions configure Restore.
type RestoreOptions struct {
	// Options open both stores; Keys is required and must be the key file
	// the backup was made with.
	Options
	// Path is the store file to replace.
	Path string
	// Backup is the backup's plaintext, a store file, read to its end
	// before anything else happens (so a damaged backup changes nothing).
	Backup io.Reader
	// NoReplay restores the backup exactly: nothing recorded after it in
	// the replaced store's audit log is re-applied.
	NoReplay bool
	// Confirm, when set, sees the report before the store is replaced;
	// an error keeps the old store.
	Confirm func(*RestoreReport) error
}

// What became of the store being replaced.
const (
	OldNone      = "none"       // there was no store
	OldReplayed  = "replayed"   // its later changes were re-applied
	OldSkipped   = "skipped"    // NoReplay: readable, nothing re-applied
	OldUnread    = "unreadable" // it could not be opened
	OldUnrelated = "unrelated"  // its audit log does not hold the backup's last event
)

// RestoreReport says what a restore did.
type RestoreReport struct {
	Backup BackupInfo `json:"backup"`
	// Old is one of the Old* values; OldError says why it was unreadable
	// or unrelated.
	Old      string `json:"old"`
	OldError string `json:"old_error,omitempty"`
	// Reapplied lists what the replaced store's audit log took away after
	// the backup and the restore took away again; with NoReplay, what the
	// restore brings back instead.
	Reapplied []Change `json:"reapplied"`
	// Lost lists what was created after the backup and is not in it.
	Lost []Change `json:"lost,omitempty"`
	// AppPasswords are those live in the backup, listed when nothing could
	// be re-applied, so the operator can judge which to revoke.
	AppPasswords []AppPassword `json:"app_passwords,omitempty"`
	// Carried counts the replaced store's audit events kept after the
	// backup's own.
	Carried     int    `json:"carried_events"`
	WebSessions int    `json:"web_sessions_ended"`
	Kept        string `json:"kept,omitempty"` // where the replaced store was kept
}

// Change is one re-applied (or brought back) change.
type Change struct {
	Time time.Time `json:"time,omitzero"`
	Kind string    `json:"kind"`
	User string    `json:"user,omitempty"`
	What string    `json:"what"`
}

// ErrInUse means the store to replace is open in a running server.
var ErrInUse = errors.New("the store is in use: stop `postern serve` first")

// Restore replaces the store at o.Path with a backup. The backup is written
// beside the store, opened (which walks every page), its audit chain
// verified; then, when the replaced store can be read and its log holds
// the backup's last event, what was taken away after it (revocations, used
// codes, disables, deletions, password changes, two-step resets) is taken
// away again and the later events are carried over so the chain goes on;
// every TOTP last step moves to now and every web session ends; a
// "store.restore" event links the two chains. Only then is the old file
// kept beside and the new one renamed over it.
func Restore(ctx context.Context, o RestoreOptions) (*RestoreReport, error) {
	// The backup is read, opened and checked before the store being
	// replaced is even opened: a wrong key or a damaged file leaves it as
	// it was, byte for byte.
	tmp, err := writeBeside(o.Path, o.Backup)
	if err != nil {
		return nil, err
	}
	done := false
	defer func() {
		if !done {
			os.Remove(tmp)
		}
	}()
	st, err := Open(tmp, o.Options)
	if err != nil {
		return nil, fmt.Errorf("the backup's store: %w", err)
	}
	defer st.Close()
	old, oldErr := openOld(o)
	if old != nil {
		defer old.Close()
	}
	if errors.Is(oldErr, ErrLocked) {
		return nil, fmt.Errorf("%w (%v)", ErrInUse, oldErr)
	}
	rep, err := st.restoreFrom(ctx, old, oldErr, o.NoReplay)
	if cerr := st.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	if o.Confirm != nil {
		if err := o.Confirm(rep); err != nil {
			return nil, err
		}
	}
	if rep.Kept, err = replace(o.Path, tmp); err != nil {
		return nil, err
	}
	done = true
	return rep, nil
}

// openOld opens the store being replaced to read it only; nil and no
// error when there is none.
func openOld(o RestoreOptions) (kv, error) {
	if _, err := os.Stat(o.Path); errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	db, err := openBoltReadOnly(o.Path, 500*time.Millisecond)
	if err != nil {
		return nil, err
	}
	if err := db.View(func(tx kvTx) error {
		if v := tx.Get(bMeta, "schema"); string(v) != fmt.Sprint(schemaVersion) {
			return fmt.Errorf("%w %q (this build reads %d)", ErrSchema, v, schemaVersion)
		}
		return nil
	}); err != nil {
		db.Close()
		return nil, err
	}
	return db, nil
}

// writeBeside copies r into a new private file next to path and syncs it.
func writeBeside(path string, r io.Reader) (string, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return "", err
	}
	tmp := path + ".restoring"
	os.Remove(tmp) // left by a restore that was interrupted
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = io.Copy(f, r)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(tmp)
		return "", fmt.Errorf("read the backup: %w", err)
	}
	return tmp, nil
}

// replace keeps the old store as path.replaced-<time> (a hard link, so the
// rename below is still atomic) and renames tmp over path.
func replace(path, tmp string) (kept string, err error) {
	if _, err := os.Stat(path); err == nil {
		base := path + ".replaced-" + time.Now().UTC().Format("20060102T150405Z")
		kept = base
		for i := 2; ; i++ {
			err := os.Link(path, kept)
			if err == nil {
				break
			}
			if !errors.Is(err, fs.ErrExist) || i > 100 {
				return "", fmt.Errorf("keep the replaced store: %w", err)
			}
			kept = fmt.Sprintf("%s-%d", base, i)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		return "", err
	}
	d, err := os.Open(filepath.Dir(path))
	if err != nil {
		return kept, err
	}
	defer d.Close()
	return kept, d.Sync()
}

// restoreFrom runs on the store opened from the backup.
func (s *Store) restoreFrom(ctx context.Context, old kv, oldErr error, noReplay bool) (*RestoreReport, error) {
	if _, err := s.VerifyAudit(ctx); err != nil {
		return nil, fmt.Errorf("the backup's audit log: %w", err)
	}
	rep := &RestoreReport{Reapplied: []Change{}}
	if err := s.view(func(tx kvTx) (err error) {
		if kc := tx.Get(bMeta, keyCheckKey); subtle.ConstantTimeCompare(kc, []byte(s.keyCheck())) != 1 {
			return domainError{ErrOtherKeys}
		}
		rep.Backup, err = auditHeadInfo(tx)
		return err
	}); err != nil {
		return nil, err
	}
	r, err := s.newReplay(ctx, old, oldErr, rep)
	if err != nil {
		return nil, err
	}
	var brought []Change
	if noReplay && r.related() {
		// Dry run: the changes replay would make, rolled back, are what
		// the restore brings back.
		err := s.update(func(tx kvTx) error {
			if err := r.apply(tx); err != nil {
				return err
			}
			return errDryRun
		})
		if !errors.Is(err, errDryRun) {
			return nil, err
		}
		brought, rep.Old = r.changes, OldSkipped
	}
	if !r.related() {
		if rep.AppPasswords, err = s.liveAppPasswords(); err != nil {
			return nil, err
		}
	}
	err = s.update(func(tx kvTx) error {
		if err := r.carry(tx); err != nil {
			return err
		}
		rep.Reapplied = brought
		if rep.Old == OldReplayed {
			if err := r.apply(tx); err != nil {
				return err
			}
			rep.Reapplied = r.changes
		}
		rep.Lost = r.lost
		return s.finishRestore(ctx, tx, rep)
	})
	return rep, err
}

var errDryRun = domainError{errors.New("dry run")}

// liveAppPasswords lists every app password not revoked.
func (s *Store) liveAppPasswords() ([]AppPassword, error) {
	var out []AppPassword
	err := s.view(func(tx kvTx) error {
		return tx.Scan(bAppPw, "", func(_ string, v []byte) error {
			var rec appPwRecord
			if _, err := getJSONBytes(v, &rec); err != nil {
				return err
			}
			if rec.Revoked.IsZero() {
				out = append(out, rec.public())
			}
			return nil
		})
	})
	return out, err
}

// finishRestore moves every TOTP last step to now (a code seen before the
// restore is never accepted again), ends every web session and records
// the restore.
func (s *Store) finishRestore(ctx context.Context, tx kvTx, rep *RestoreReport) error {
	step := s.opts.Clock.Now().Unix() / totpPeriod
	var users []*userRecord
	if err := tx.Scan(bUsers, "", func(_ string, v []byte) error {
		var rec userRecord
		if _, err := getJSONBytes(v, &rec); err != nil {
			return err
		}
		users = append(users, &rec)
		return nil
	}); err != nil {
		return err
	}
	for _, rec := range users {
		rec.TOTP.LastStep = max(rec.TOTP.LastStep, step)
		if err := putJSON(tx, bUsers, rec.Name, rec); err != nil {
			return err
		}
	}
	var sessions []string
	if err := tx.Scan(bWebSessions, "", func(k string, _ []byte) error {
		sessions = append(sessions, k)
		return nil
	}); err != nil {
		return err
	}
	for _, k := range sessions {
		if err := tx.Delete(bWebSessions, k); err != nil {
			return err
		}
	}
	rep.WebSessions = len(sessions)
	return s.recordRestore(ctx, tx, rep)
}

// recordRestore appends one event per re-applied change and the
// "store.restore" event that names both chains' heads.
func (s *Store) recordRestore(ctx context.Context, tx kvTx, rep *RestoreReport) error {
	if rep.Old == OldReplayed {
		for _, c := range rep.Reapplied {
			if err := s.audit.appendTx(tx, ctx, Event{Kind: "store.reapply", User: c.User, Result: "ok",
				Detail: safetext.Clip(strings.ToValidUTF8(c.Kind+": "+c.What, "?"), 200)}); err != nil {
				return err
			}
		}
	}
	return s.audit.appendTx(tx, ctx, Event{Kind: "store.restore", Result: "ok", Reason: rep.Old,
		Detail: fmt.Sprintf("backup_seq=%d backup_head=%s backup_time=%s carried=%d reapplied=%d web_sessions_ended=%d",
			rep.Backup.Seq, rep.Backup.Head, rep.Backup.Time.Format(time.RFC3339), rep.Carried, len(rep.Reapplied), rep.WebSessions)})
}
