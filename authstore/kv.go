package authstore

import (
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"runtime/debug"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// kv is the small transactional key-value seam the domain logic speaks to.
// bbolt implements it here; a replicated engine can implement it later
// without touching callers. No bbolt type leaves this file.
type kv interface {
	View(fn func(kvTx) error) error
	Update(fn func(kvTx) error) error
	// Copy writes a consistent copy of the whole database to w, as of one
	// read transaction, in which inspect runs first (to learn what the
	// copy holds). Writers are not blocked while it runs.
	Copy(w io.Writer, inspect func(kvTx) error) (int64, error)
	Close() error
}

type kvTx interface {
	Get(bucket, key string) []byte // nil when absent; valid only inside the transaction
	Put(bucket, key string, value []byte) error
	Delete(bucket, key string) error
	// Scan calls fn for every key with the prefix, in key order; stop by
	// returning errStopScan.
	Scan(bucket, prefix string, fn func(key string, value []byte) error) error
	NextSequence(bucket string) (uint64, error)
	// SetSequence moves the bucket's sequence (a restore carrying audit
	// events over keeps their numbers).
	SetSequence(bucket string, n uint64) error
	// Last returns the bucket's last key and value; "" and nil when empty.
	Last(bucket string) (string, []byte)
}

var errStopScan = errors.New("stop scan")

var allBuckets = []string{bUsers, bAppPw, bAppPwIndex, bTokens, bWebSessions, bPolicy, bAudit, bMeta}

const (
	bUsers      = "users"
	bAppPw      = "apppw"
	bAppPwIndex = "apppw_index"
	bTokens     = "tokens"
	bPolicy     = "policy"
	bAudit      = "audit"
	bMeta       = "meta"
)

// ErrLocked means another process holds the database.
var ErrLocked = errors.New("store is locked by another process")

// ErrCorrupt means the database file failed its consistency checks.
var ErrCorrupt = errors.New("store file is corrupt")

type boltKV struct{ db *bolt.DB }

func openBolt(path string, timeout time.Duration) (kv, error) {
	return openBoltMode(path, timeout, false)
}

// openBoltReadOnly opens a file only to read it (a shared lock, no write
// at all): a store being replaced by a restore stays byte for byte as it
// was until the moment it is replaced.
func openBoltReadOnly(path string, timeout time.Duration) (kv, error) {
	return openBoltMode(path, timeout, true)
}

func openBoltMode(path string, timeout time.Duration, readOnly bool) (kv, error) {
	// A file cut short inside its two meta pages gets a bare error from
	// bbolt; name it as the damage it is.
	if st, err := os.Stat(path); err == nil && st.Size() > 0 && st.Size() < 2*int64(os.Getpagesize()) {
		return nil, fmt.Errorf("open %s: %w: truncated to %d bytes", path, ErrCorrupt, st.Size())
	}
	var db *bolt.DB
	err := guard(func() (err error) {
		// Check, run at open, needs the free list, which bbolt loads by
		// itself only for writers.
		db, err = bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout, ReadOnly: readOnly, PreLoadFreelist: readOnly})
		return err
	})
	var damaged *damageError
	switch {
	case errors.As(err, &damaged):
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	case errors.Is(err, berrors.ErrTimeout):
		return nil, fmt.Errorf("open %s: %w (waited %s; is postern already running?)", path, ErrLocked, timeout)
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	case err != nil:
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	b := &boltKV{db: db}
	if err := b.check(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w: %v", path, ErrCorrupt, err)
	}
	if readOnly {
		return b, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists([]byte(name)); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	return b, nil
}

// check walks every page once at open: bbolt trusts its pages and would
// panic later on a flipped byte, so a damaged file is refused up front.
func (b *boltKV) check() error {
	return guard(func() error {
		return b.db.View(func(tx *bolt.Tx) error {
			if err := pageBounds(tx); err != nil {
				return err
			}
			if _, err := touchAll(tx); err != nil {
				return err
			}
			// Drain every report: Check walks pages in its own goroutine,
			// which must finish before the transaction (and the mapping)
			// goes away.
			var first error
			for cerr := range tx.Check() {
				if first == nil {
					first = cerr
				}
			}
			return first
		})
	})
}

// damageError is a panic or memory fault inside bbolt, caught by guard.
type damageError struct{ v any }

func (e *damageError) Error() string { return fmt.Sprint("damaged page: ", e.v) }

// guard runs fn with panics and memory faults turned into errors: a
// flipped page id makes bbolt follow a pointer outside the mapping, which
// would otherwise kill the process instead of refusing the file.
func guard(fn func() error) (err error) {
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			err = &damageError{r}
		}
	}()
	return fn()
}

// pageBounds walks the page headers in file order and refuses a run that
// ends past the high-water mark: given such a page, bbolt's Check would
// try to mark billions of pages reachable. A free page is stepped over
// one page at a time: it holds whatever was last written there, such as
// the middle of a deleted value once a write reused the value's first
// page, and neither bbolt nor Check reads it.
func pageBounds(tx *bolt.Tx) error {
	for id := 0; ; {
		info, err := tx.Page(id)
		if err != nil || info == nil {
			return err // nil info: past the high-water mark, done
		}
		if info.Type == "free" {
			id++
			continue
		}
		if info.OverflowCount > 0 {
			if last, err := tx.Page(id + info.OverflowCount); err != nil || last == nil {
				return fmt.Errorf("page %d: overflow %d runs past the end", id, info.OverflowCount)
			}
		}
		id += 1 + info.OverflowCount
	}
}

// touchAll reads every key and value in this goroutine, where guard
// catches a fault, before bbolt's Check walks the same pages in a
// goroutine nobody can guard. The checksum only keeps the reads alive.
func touchAll(tx *bolt.Tx) (uint32, error) {
	var sum uint32
	var walk func(b *bolt.Bucket) error
	walk = func(b *bolt.Bucket) error {
		return b.ForEach(func(k, v []byte) error {
			sum = crc32.Update(crc32.Update(sum, crc32.IEEETable, k), crc32.IEEETable, v)
			if v == nil {
				if child := b.Bucket(k); child != nil {
					return walk(child)
				}
			}
			return nil
		})
	}
	err := tx.ForEach(func(_ []byte, b *bolt.Bucket) error { return walk(b) })
	return sum, err
}

func (b *boltKV) View(fn func(kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *boltKV) Update(fn func(kvTx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *boltKV) Copy(w io.Writer, inspect func(kvTx) error) (int64, error) {
	var n int64
	err := b.db.View(func(tx *bolt.Tx) error {
		if err := inspect(boltTx{tx}); err != nil {
			return err
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
}

func (b *boltKV) Close() error { return b.db.Close() }

type boltTx struct{ tx *bolt.Tx }

func (t boltTx) bucket(name string) (*bolt.Bucket, error) {
	bk := t.tx.Bucket([]byte(name))
	if bk == nil {
		return nil, fmt.Errorf("bucket %q missing", name)
	}
	return bk, nil
}

func (t boltTx) Get(bucket, key string) []byte {
	bk, err := t.bucket(bucket)
	if err != nil {
		return nil
	}
	return bk.Get([]byte(key))
}

func (t boltTx) Put(bucket, key string, value []byte) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Put([]byte(key), value)
}

func (t boltTx) Delete(bucket, key string) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.Delete([]byte(key))
}

func (t boltTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	c := bk.Cursor()
	p := []byte(prefix)
	for k, v := c.Seek(p); k != nil && len(k) >= len(p) && string(k[:len(p)]) == prefix; k, v = c.Next() {
		if err := fn(string(k), v); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (t boltTx) NextSequence(bucket string) (uint64, error) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return 0, err
	}
	return bk.NextSequence()
}

func (t boltTx) SetSequence(bucket string, n uint64) error {
	bk, err := t.bucket(bucket)
	if err != nil {
		return err
	}
	return bk.SetSequence(n)
}

func (t boltTx) Last(bucket string) (string, []byte) {
	bk, err := t.bucket(bucket)
	if err != nil {
		return "", nil
	}
	k, v := bk.Cursor().Last()
	return string(k), v
}
