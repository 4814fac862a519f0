package authstore

import (
	"context"
	"strconv"
	"time"
)

// AuditFilter selects audit events; zero fields match everything.
type AuditFilter struct {
	User   string // canonical
	Kind   string // exact, or a prefix ending in "." ("mfa.")
	Result string
	Since  time.Time // inclusive
	Until  time.Time // exclusive
	// Before continues a listing: only events with a lower sequence number.
	Before uint64
}

func (f AuditFilter) match(ev Event) bool {
	switch {
	case f.Before != 0 && ev.Seq >= f.Before:
		return false
	case f.User != "" && ev.User != f.User:
		return false
	case f.Kind != "" && ev.Kind != f.Kind && !(f.Kind[len(f.Kind)-1] == '.' && len(ev.Kind) > len(f.Kind) && ev.Kind[:len(f.Kind)] == f.Kind):
		return false
	case f.Result != "" && ev.Result != f.Result:
		return false
	case !f.Since.IsZero() && ev.Time.Before(f.Since):
		return false
	case !f.Until.IsZero() && !ev.Time.Before(f.Until):
		return false
	}
	return true
}

// QueryAudit returns up to limit matching events, newest first, and the
// cursor (Before) of the next page, 0 when there is none.
func (s *Store) QueryAudit(ctx context.Context, f AuditFilter, limit int) ([]Event, uint64, error) {
	if limit <= 0 {
		limit = 100
	}
	// Keys are zero-padded sequence numbers scanned oldest first, so keep
	// the newest limit+1 matches in a ring; one more tells whether a next
	// page exists.
	ring := make([]Event, 0, limit+1)
	err := s.view(func(tx kvTx) error {
		return tx.Scan(bAudit, "", func(k string, v []byte) error {
			if f.Before != 0 && k >= auditKey(f.Before) {
				return errStopScan
			}
			var ev Event
			if _, err := getJSONBytes(v, &ev); err != nil {
				return err
			}
			if !f.match(ev) {
				return nil
			}
			if len(ring) == limit+1 {
				ring = append(ring[:0], ring[1:]...)
			}
			ring = append(ring, ev)
			return nil
		})
	})
	if err != nil {
		return nil, 0, err
	}
	var next uint64
	if len(ring) > limit {
		ring = ring[1:]
		next = ring[0].Seq
	}
	out := make([]Event, len(ring))
	for i, ev := range ring {
		out[len(ring)-1-i] = ev
	}
	return out, next, nil
}

// ExportAudit calls fn for every matching event, oldest first.
func (s *Store) ExportAudit(ctx context.Context, f AuditFilter, fn func(Event) error) error {
	return s.view(func(tx kvTx) error {
		return tx.Scan(bAudit, "", func(_ string, v []byte) error {
			if err := ctx.Err(); err != nil {
				return err
			}
			var ev Event
			if _, err := getJSONBytes(v, &ev); err != nil {
				return err
			}
			if !f.match(ev) {
				return nil
			}
			return fn(ev)
		})
	})
}

// Record appends an event for an action the store itself does not
// perform (an admin ending a live session, a web sign-out), with the actor
// and source taken from ctx.
func (s *Store) Record(ctx context.Context, ev Event) error {
	return s.update(func(tx kvTx) error { return s.audit.appendTx(tx, ctx, ev) })
}

// FormatCursor and ParseCursor spell an audit cursor for URLs.
func FormatCursor(seq uint64) string {
	if seq == 0 {
		return ""
	}
	return strconv.FormatUint(seq, 10)
}

// ParseCursor reads a cursor made by FormatCursor; "" is the first page.
func ParseCursor(s string) (uint64, bool) {
	if s == "" {
		return 0, true
	}
	n, err := strconv.ParseUint(s, 10, 64)
	return n, err == nil && n > 0
}
