package authstore

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Event is one audit record. It never carries a secret.
type Event struct {
	Seq      uint64    `json:"seq"`
	Time     time.Time `json:"time"`
	Kind     string    `json:"kind"` // "login", "user.create", "apppw.revoke", …
	Actor    string    `json:"actor,omitempty"`
	Source   string    `json:"source,omitempty"`
	User     string    `json:"user,omitempty"`
	Protocol Protocol  `json:"protocol,omitempty"`
	Result   string    `json:"result,omitempty"` // "ok", "denied", "throttled", "unavailable"
	Reason   string    `json:"reason,omitempty"`
	Detail   string    `json:"detail,omitempty"`
	Prev     string    `json:"prev"`
	Hash     string    `json:"hash"`
}

// ErrAuditChain means a stored event was altered, removed or reordered.
var ErrAuditChain = errors.New("audit chain broken")

const auditHeadKey = "audit_head"

// auditWriter chains events. Changes append their event inside their own
// transaction; sign-in outcomes are queued and written in batches, so a
// login costs no disk write of its own.
type auditWriter struct {
	db    kv
	now   func() time.Time
	log   *slog.Logger
	queue chan auditItem
	done  chan struct{}

	// mu guards closed: a login racing with Close must not send on the
	// closed queue (that would panic instead of answering "unavailable").
	mu     sync.RWMutex
	closed bool
}

// auditItem is an event to write, or (done set, no event) a flush marker.
type auditItem struct {
	ev   *Event
	done chan struct{}
}

func newAuditWriter(db kv, now func() time.Time, log *slog.Logger) *auditWriter {
	w := &auditWriter{db: db, now: now, log: log, queue: make(chan auditItem, 4096), done: make(chan struct{})}
	go w.run()
	return w
}

func (w *auditWriter) run() {
	defer close(w.done)
	var held []Event
	for it := range w.queue {
		batch := w.collect(it)
		for _, it := range batch {
			if it.ev != nil {
				held = append(held, *it.ev)
			}
		}
		held = w.write(held)
		for _, it := range batch {
			if it.done != nil {
				close(it.done)
			}
		}
	}
	w.write(held) // closing: one last try
}

// maxHeld bounds the sign-in events kept in memory while the store
// refuses writes: as many as the queue holds.
const maxHeld = 4096

// write appends events in one transaction. When the store refuses them (a
// full disk, S2) it returns them, the newest maxHeld, to go first in the
// next batch: a sign-in's event comes late rather than never.
func (w *auditWriter) write(events []Event) []Event {
	if len(events) == 0 {
		return nil
	}
	err := w.db.Update(func(tx kvTx) error {
		for _, ev := range events {
			if err := w.appendRaw(tx, ev); err != nil {
				return err
			}
		}
		return nil
	})
	if err == nil {
		return nil
	}
	dropped := max(0, len(events)-maxHeld)
	w.log.Error("audit write failed; events kept to try again", "events", len(events), "dropped", dropped, "err", err)
	return events[dropped:]
}

// auditLinger is how long the writer waits for more sign-in events before
// committing: each commit costs an fsync, and at a thousand logins a second
// committing whatever had arrived took an eighth of postern's CPU.
const auditLinger = 50 * time.Millisecond

// collect gathers a batch starting with first: up to 1024 items or
// auditLinger, whichever comes first; a flush marker or the queue closing
// ends the wait at once.
func (w *auditWriter) collect(first auditItem) []auditItem {
	batch := []auditItem{first}
	if first.done != nil {
		return batch
	}
	linger := time.NewTimer(auditLinger)
	defer linger.Stop()
	for len(batch) < 1024 {
		select {
		case it, ok := <-w.queue:
			if !ok {
				return batch
			}
			batch = append(batch, it)
			if it.done != nil {
				return batch
			}
		case <-linger.C:
			return batch
		}
	}
	return batch
}

// enqueue records a sign-in outcome asynchronously.
func (w *auditWriter) enqueue(ev Event) {
	ev.Time = w.now().UTC()
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		w.log.Warn("store closed; audit event dropped", "kind", ev.Kind, "user", ev.User)
		return
	}
	select {
	case w.queue <- auditItem{ev: &ev}:
	default:
		w.log.Warn("audit queue full; event dropped", "kind", ev.Kind, "user", ev.User)
	}
}

// flush waits until everything queued before it is written.
func (w *auditWriter) flush() {
	done := make(chan struct{})
	w.mu.RLock()
	if w.closed {
		w.mu.RUnlock()
		return
	}
	w.queue <- auditItem{done: done}
	w.mu.RUnlock()
	<-done
}

func (w *auditWriter) close() {
	w.mu.Lock()
	if !w.closed {
		w.closed = true
		close(w.queue)
	}
	w.mu.Unlock()
	<-w.done
}

// appendTx adds ev (actor taken from ctx) inside the caller's transaction.
func (w *auditWriter) appendTx(tx kvTx, ctx context.Context, ev Event) error {
	a := actorOf(ctx)
	ev.Actor = a.Name
	if a.Source.IsValid() && ev.Source == "" {
		ev.Source = a.Source.String()
	}
	ev.Time = w.now().UTC()
	return w.appendRaw(tx, ev)
}

func (w *auditWriter) appendRaw(tx kvTx, ev Event) error {
	seq, err := tx.NextSequence(bAudit)
	if err != nil {
		return err
	}
	ev.Seq = seq
	ev.Prev = string(tx.Get(bMeta, auditHeadKey))
	ev.Hash = eventHash(ev)
	data, err := json.Marshal(ev)
	if err != nil {
		return err
	}
	if err := tx.Put(bAudit, auditKey(seq), data); err != nil {
		return err
	}
	return tx.Put(bMeta, auditHeadKey, []byte(ev.Hash))
}

func auditKey(seq uint64) string { return fmt.Sprintf("%020d", seq) }

// eventHash covers every field but Hash itself, and the previous hash.
func eventHash(ev Event) string {
	ev.Hash = ""
	data, _ := json.Marshal(ev)
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:])
}

// AuditTail returns the last n events, oldest first.
func (s *Store) AuditTail(ctx context.Context, n int) ([]Event, error) {
	if n <= 0 {
		return nil, nil
	}
	var all []Event
	err := s.view(func(tx kvTx) error {
		return tx.Scan(bAudit, "", func(_ string, v []byte) error {
			var ev Event
			if _, err := getJSONBytes(v, &ev); err != nil {
				return err
			}
			all = append(all, ev)
			if len(all) > 2*n+1024 {
				all = append(all[:0], all[len(all)-n:]...)
			}
			return nil
		})
	})
	if len(all) > n {
		all = all[len(all)-n:]
	}
	return all, err
}

// VerifyAudit walks the whole chain, from the pruning checkpoint when
// there is one, and reports the first broken link as ErrAuditChain (a
// finding, not ErrUnavailable).
func (s *Store) VerifyAudit(ctx context.Context) (int, error) {
	n := 0
	err := s.view(func(tx kvTx) error {
		cp, err := auditCheckpoint(tx)
		if err != nil {
			return domainError{fmt.Errorf("%w: unreadable checkpoint: %v", ErrAuditChain, err)}
		}
		prev := cp.Hash // "" when nothing was ever pruned
		err = tx.Scan(bAudit, "", func(k string, v []byte) error {
			var ev Event
			if err := json.Unmarshal(v, &ev); err != nil {
				return domainError{fmt.Errorf("%w at %s: %v", ErrAuditChain, k, err)}
			}
			if ev.Prev != prev || eventHash(ev) != ev.Hash || auditKey(ev.Seq) != k {
				return domainError{fmt.Errorf("%w at event %d", ErrAuditChain, ev.Seq)}
			}
			prev = ev.Hash
			n++
			return nil
		})
		if err == nil && string(tx.Get(bMeta, auditHeadKey)) != prev {
			err = domainError{fmt.Errorf("%w: head does not match the last event", ErrAuditChain)}
		}
		return err
	})
	return n, err
}

// FlushAudit waits until queued sign-in events are written.
func (s *Store) FlushAudit() { s.audit.flush() }
