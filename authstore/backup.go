package authstore

import (
	"context"
	"fmt"
	"io"
	"time"
)

// BackupInfo describes a copy of the store by the audit event it ends
// with: a restore finds that event in the log of the store it replaces and
// re-applies what came after it.
type BackupInfo struct {
	// Time is the time of the copy's last audit event, which is its
	// "store.backup" event or a sign-in recorded just after it.
	Time  time.Time `json:"time"`
	Seq   uint64    `json:"seq"`
	Head  string    `json:"head"`
	Bytes int64     `json:"bytes"`
}

// Backup writes a consistent copy of the whole store (a bbolt file) to w
// while the store keeps serving. It first records a "store.backup" event
// (actor from ctx, detail given by the caller: how the copy is encrypted),
// so that every backup is in the audit log and in the copy itself. The
// key file is never part of the copy: without it the copy's sealed secrets
// and digests are useless.
func (s *Store) Backup(ctx context.Context, w io.Writer, detail string) (BackupInfo, error) {
	if err := s.flushUsage(); err != nil {
		s.opts.Logger.Warn("flush last-used before a backup", "err", err)
	}
	s.audit.flush() // queued sign-in events belong in the copy
	err := s.update(func(tx kvTx) error {
		return s.audit.appendTx(tx, ctx, Event{Kind: "store.backup", Result: "ok", Detail: detail})
	})
	if err != nil {
		return BackupInfo{}, err
	}
	var info BackupInfo
	info.Bytes, err = s.db.Copy(w, func(tx kvTx) error {
		var ierr error
		info, ierr = auditHeadInfo(tx)
		return ierr
	})
	if err != nil {
		return BackupInfo{}, fmt.Errorf("backup: %w", err)
	}
	return info, nil
}

// auditHeadInfo reads the last audit event.
func auditHeadInfo(tx kvTx) (BackupInfo, error) {
	k, v := tx.Last(bAudit)
	if v == nil {
		return BackupInfo{}, fmt.Errorf("%w: the audit log is empty", ErrAuditChain)
	}
	var ev Event
	if _, err := getJSONBytes(v, &ev); err != nil {
		return BackupInfo{}, fmt.Errorf("decode %s/%s: %w", bAudit, k, err)
	}
	return BackupInfo{Time: ev.Time, Seq: ev.Seq, Head: ev.Hash}, nil
}
