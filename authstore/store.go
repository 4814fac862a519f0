// Package authstore owns accounts, credentials, second factors, the
// organisation's policy, rate limits and the audit log, all on one bbolt
// file, and makes the one authentication decision (Authenticate). It knows
// nothing of protocols beyond their names.
package authstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/postern-dev/postern/internal/clock"
)

// ErrSchema means the file was written by an incompatible version.
var ErrSchema = errors.New("unsupported store schema version")

// Options configure a Store. Zero values get the production defaults.
type Options struct {
	Keys          *Keys // required
	LockTimeout   time.Duration
	KDF           KDFParams
	Limits        Limits
	FlushInterval time.Duration // last-used flush; default 30 s
	Issuer        string        // shown in authenticator apps; default "postern"
	Logger        *slog.Logger
	// OnRevoke is told which live sessions must end after a credential
	// change. Called after the change committed, outside any transaction.
	OnRevoke func(Revocation)
	// OnPolicy is told the organisation's policy after a change committed,
	// so that whoever ends sessions when a grace period runs out learns
	// the new date.
	OnPolicy func(Policy)
	Clock    clock.Clock // nil: the system clock
	Sleep    func(ctx context.Context, d time.Duration) error
	Rand     io.Reader
}

// Store is the credential store. Safe for concurrent use.
type Store struct {
	db   kv
	opts Options
	hash *hasher
	seal *sealer
	mac  *macPool // digests under the pepper
	// digests counts app-password HMACs computed; lets tests prove A7.
	digests atomic.Int64
	limit   *limiter
	usage   *usageTracker
	audit   *auditWriter
	hot     *decisionCache

	dummyOnce sync.Once
	dummyHash string

	stop      chan struct{}
	done      sync.WaitGroup
	closeOnce sync.Once
	closeErr  error
}

// Open opens or creates the store at path. It never waits forever for
// another process's lock and refuses a corrupt or foreign file.
func Open(path string, opts Options) (*Store, error) {
	if opts.Keys == nil {
		return nil, fmt.Errorf("open store: %w: no keys", ErrKeyFile)
	}
	opts = withDefaults(opts)
	if !opts.KDF.valid() {
		return nil, fmt.Errorf("open store: unusable KDF parameters %+v", opts.KDF)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	db, err := openBolt(path, opts.LockTimeout)
	if err != nil {
		return nil, err
	}
	if err := checkSchema(db, opts.Logger); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	seal, err := newSealer(opts.Keys)
	if err != nil {
		db.Close()
		return nil, err
	}
	s := &Store{db: db, opts: opts, hash: newHasher(opts.KDF), seal: seal, mac: newMacPool(opts.Keys.Pepper),
		limit: newLimiter(opts.Limits, opts.Clock.Now), stop: make(chan struct{})}
	if err := s.noteKeyCheck(); err != nil {
		db.Close()
		return nil, fmt.Errorf("open %s: %w", path, err)
	}
	s.usage = newUsageTracker()
	s.hot = newDecisionCache()
	s.audit = newAuditWriter(db, opts.Clock.Now, opts.Logger)
	s.done.Add(1)
	go s.flushLoop()
	return s, nil
}

func withDefaults(o Options) Options {
	if o.LockTimeout == 0 {
		o.LockTimeout = 2 * time.Second
	}
	if o.KDF == (KDFParams{}) {
		o.KDF = defaultKDF
	}
	o.Limits = o.Limits.withDefaults()
	if o.FlushInterval == 0 {
		o.FlushInterval = 30 * time.Second
	}
	if o.Issuer == "" {
		o.Issuer = "postern"
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.OnRevoke == nil {
		o.OnRevoke = func(Revocation) {}
	}
	if o.OnPolicy == nil {
		o.OnPolicy = func(Policy) {}
	}
	o.Clock = clock.Or(o.Clock)
	if o.Sleep == nil {
		o.Sleep = sleepCtx
	}
	if o.Rand == nil {
		o.Rand = rand.Reader
	}
	return o
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (s *Store) flushLoop() {
	defer s.done.Done()
	t := time.NewTicker(s.opts.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			if err := s.flushUsage(); err != nil {
				s.opts.Logger.Warn("flush last-used", "err", err)
			}
		case <-s.stop:
			return
		}
	}
}

// Close flushes last-used data and the audit queue, then closes the file.
// Later calls return the first call's result: shutdown paths overlap.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.stop)
		s.done.Wait()
		err := s.flushUsage()
		s.audit.close()
		s.closeErr = errors.Join(err, s.db.Close())
	})
	return s.closeErr
}

// Actor is who makes a change, for the audit log.
type Actor struct {
	Name   string // "cli", "admin:alice", "self:bob"
	Source netip.Addr
}

type actorKey struct{}

// WithActor records who acts in ctx; changes are audited under that name.
func WithActor(ctx context.Context, a Actor) context.Context {
	return context.WithValue(ctx, actorKey{}, a)
}

func actorOf(ctx context.Context) Actor {
	a, _ := ctx.Value(actorKey{}).(Actor)
	if a.Name == "" {
		a.Name = "system"
	}
	return a
}

// update runs fn in a write transaction; store failures become
// ErrUnavailable so callers fail closed (S2). Whatever it changed, no
// decision cached before it is used after it returns (see decisionCache);
// a failed transaction invalidates too, since it may have committed.
func (s *Store) update(fn func(kvTx) error) error {
	err := s.db.Update(fn)
	s.hot.invalidate()
	return wrapUnavailable(err)
}

func (s *Store) view(fn func(kvTx) error) error {
	return wrapUnavailable(s.db.View(fn))
}

// domainError marks errors that are answers, not store failures.
type domainError struct{ error }

func (e domainError) Unwrap() error { return e.error }

func wrapUnavailable(err error) error {
	var d domainError
	if err == nil || errors.As(err, &d) {
		return err
	}
	return fmt.Errorf("%w: %v", ErrUnavailable, err)
}

func getJSON(tx kvTx, bucket, key string, v any) (bool, error) {
	data := tx.Get(bucket, key)
	if data == nil {
		return false, nil
	}
	if _, err := getJSONBytes(data, v); err != nil {
		return false, fmt.Errorf("decode %s/%s: %w", bucket, key, err)
	}
	return true, nil
}

func getJSONBytes(data []byte, v any) (bool, error) {
	if err := json.Unmarshal(data, v); err != nil {
		return false, fmt.Errorf("decode record: %w", err)
	}
	return true, nil
}

func putJSON(tx kvTx, bucket, key string, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return tx.Put(bucket, key, data)
}
