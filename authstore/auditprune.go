package authstore

import (
	"context"
	"encoding/json"
	"fmt"
	"time"
)

// auditCheckpointKey holds the last pruned event's sequence, hash and time:
// the chain of what remains starts from it, so VerifyAudit still proves
// that nothing after the checkpoint was altered, removed or reordered.
const auditCheckpointKey = "audit_checkpoint"

// AuditCheckpoint is where the retained audit log starts.
type AuditCheckpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

// pruneBatch bounds one pruning transaction, so that logins waiting to
// write never queue behind a long delete.
const pruneBatch = 1000

func auditCheckpoint(tx kvTx) (AuditCheckpoint, error) {
	var cp AuditCheckpoint
	_, err := getJSON(tx, bMeta, auditCheckpointKey, &cp)
	return cp, err
}

// PruneAudit deletes the events older than before, oldest first, a batch
// per transaction, moving the checkpoint with each batch, and records one
// "audit.prune" event when it deleted any. It returns how many it deleted.
func (s *Store) PruneAudit(ctx context.Context, before time.Time) (int, error) {
	s.audit.flush()
	total := 0
	for {
		n, err := s.pruneBatch(before)
		total += n
		if err != nil {
			return total, err
		}
		if n < pruneBatch {
			break
		}
		if err := ctx.Err(); err != nil {
			return total, err
		}
	}
	if total == 0 {
		return 0, nil
	}
	err := s.update(func(tx kvTx) error {
		cp, err := auditCheckpoint(tx)
		if err != nil {
			return err
		}
		return s.audit.appendTx(tx, ctx, Event{Kind: "audit.prune", Result: "ok",
			Detail: fmt.Sprintf("deleted=%d before=%s checkpoint_seq=%d", total, before.UTC().Format(time.RFC3339), cp.Seq)})
	})
	return total, err
}

// pruneBatch deletes up to pruneBatch of the oldest events older than
// before, and moves the checkpoint to the last one deleted.
func (s *Store) pruneBatch(before time.Time) (int, error) {
	n := 0
	err := s.update(func(tx kvTx) error {
		var keys []string
		var last Event
		err := tx.Scan(bAudit, "", func(k string, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return fmt.Errorf("decode %s/%s: %w", bAudit, k, err)
			}
			// Events are appended in time order, so the first one
			// young enough ends the batch.
			if !ev.Time.Before(before) || len(keys) == pruneBatch {
				return errStopScan
			}
			keys, last = append(keys, k), ev
			return nil
		})
		if err != nil || len(keys) == 0 {
			return err
		}
		for _, k := range keys {
			if err := tx.Delete(bAudit, k); err != nil {
				return err
			}
		}
		n = len(keys)
		return putJSON(tx, bMeta, auditCheckpointKey, AuditCheckpoint{Seq: last.Seq, Hash: last.Hash, Time: last.Time})
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}
