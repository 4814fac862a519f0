package authstore

import (
	"errors"
	"fmt"
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
}

var errStopScan = errors.New("stop scan")

var allBuckets = []string{bUsers, bAppPw, bAppPwIndex, bTokens, bPolicy, bAudit, bMeta}

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
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: timeout})
	switch {
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
func (b *boltKV) check() (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%v", r)
		}
	}()
	return b.db.View(func(tx *bolt.Tx) error {
		for cerr := range tx.Check() {
			return cerr
		}
		return nil
	})
}

func (b *boltKV) View(fn func(kvTx) error) error {
	return b.db.View(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
}

func (b *boltKV) Update(fn func(kvTx) error) error {
	return b.db.Update(func(tx *bolt.Tx) error { return fn(boltTx{tx}) })
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
