package authstore

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/postern-dev/postern/internal/fakeclock"
)

// cheapKDF keeps argon2id real but fast; tests about the KDF itself use
// defaultKDF.
var cheapKDF = KDFParams{Memory: 64, Time: 1, Threads: 1}

// epoch is where every fake clock starts: the middle of a TOTP step, so a
// code computed "now" stays valid while the test runs.
var epoch = time.Date(2030, 1, 2, 3, 4, 15, 0, time.UTC)

type revocations struct {
	mu   sync.Mutex
	seen []Revocation
}

func (r *revocations) add(v Revocation) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.seen = append(r.seen, v)
}

func (r *revocations) take() []Revocation {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.seen
	r.seen = nil
	return s
}

// testEnv is one store on a temp file with every outside dependency faked.
type testEnv struct {
	s      *Store
	path   string
	keys   *Keys
	clock  *fakeclock.Clock
	sleeps *fakeclock.Sleeps
	revs   *revocations
	opts   Options
	root   testing.TB // owns the store's lifetime, even when a subtest reopens it
}

// newTestStore opens a fresh store; mods adjust the options before Open.
func newTestStore(t testing.TB, mods ...func(*Options)) *testEnv {
	t.Helper()
	return newTestStoreAt(t, filepath.Join(t.TempDir(), "postern.db"), mods...)
}

// newTestStoreAt is newTestStore with the file at path.
func newTestStoreAt(t testing.TB, path string, mods ...func(*Options)) *testEnv {
	t.Helper()
	keys, err := NewKeys(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	clock := fakeclock.New(epoch)
	env := &testEnv{path: path, keys: keys, clock: clock,
		sleeps: fakeclock.NewSleeps(clock), revs: &revocations{}, root: t}
	env.opts = Options{Keys: keys, KDF: cheapKDF, LockTimeout: 100 * time.Millisecond,
		Clock: clock, Sleep: env.sleeps.Sleep, OnRevoke: env.revs.add}
	for _, m := range mods {
		m(&env.opts)
	}
	env.open(t)
	return env
}

func (e *testEnv) open(t testing.TB) {
	t.Helper()
	s, err := Open(e.path, e.opts)
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	e.s = s
	e.root.Cleanup(func() { s.Close() })
}

// reopen closes the store and opens the same file again, as a restart does.
func (e *testEnv) reopen(t testing.TB, mods ...func(*Options)) {
	t.Helper()
	if err := e.s.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	for _, m := range mods {
		m(&e.opts)
	}
	e.open(t)
}

func withLimits(l Limits) func(*Options) { return func(o *Options) { o.Limits = l } }

func withKDF(p KDFParams) func(*Options) { return func(o *Options) { o.KDF = p } }

func frozenSleep(e *testEnv) { e.sleeps.Freeze() }

var bg = context.Background()

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

const goodPassword = "correct horse battery"

// addUser creates a user with goodPassword.
func (e *testEnv) addUser(t testing.TB, name string) User {
	t.Helper()
	u, err := e.s.CreateUser(bg, NewUser{Name: name, Password: goodPassword})
	if err != nil {
		t.Fatalf("create user %s: %v", name, err)
	}
	return u
}

func (e *testEnv) addAppPassword(t testing.TB, user string, scopes ...Protocol) (AppPassword, string) {
	t.Helper()
	ap, secret, err := e.s.CreateAppPassword(bg, user, NewAppPassword{Name: "phone", Scopes: scopes})
	if err != nil {
		t.Fatalf("create app password for %s: %v", user, err)
	}
	return ap, secret
}

var totpTestOpts = totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1}

func totpCode(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCodeCustom(secret, at, totpTestOpts)
	if err != nil {
		t.Fatal(err)
	}
	return code
}

// enableTOTP enrols user and returns the authenticator secret and the
// first backup codes. The clock moves one step on, so the confirming
// code is spent and the next step's code is fresh.
func (e *testEnv) enableTOTP(t testing.TB, user string) (string, []string) {
	t.Helper()
	enr, err := e.s.BeginTOTP(bg, user)
	if err != nil {
		t.Fatalf("begin totp: %v", err)
	}
	codes, err := e.s.ConfirmTOTP(bg, user, totpCode(t, enr.Secret, e.clock.Now()))
	if err != nil {
		t.Fatalf("confirm totp: %v", err)
	}
	e.clock.Advance(30 * time.Second)
	return enr.Secret, codes
}

func (e *testEnv) login(user, secret string, p Protocol, src string) (Grant, error) {
	return e.s.Authenticate(bg, Attempt{Protocol: p, Username: user, Secret: secret, Source: addr(src)})
}

func (e *testEnv) second(user, code, src string) (FactorResult, error) {
	return e.s.VerifySecondFactor(bg, user, code, Attempt{Protocol: Web, Username: user, Source: addr(src)})
}

// rawGet reads one stored value through the kv layer.
func (e *testEnv) rawGet(t testing.TB, bucket, key string) []byte {
	t.Helper()
	var out []byte
	err := e.s.db.View(func(tx kvTx) error {
		out = append([]byte(nil), tx.Get(bucket, key)...)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (e *testEnv) rawPut(t testing.TB, bucket, key string, value []byte) {
	t.Helper()
	if err := e.s.db.Update(func(tx kvTx) error { return tx.Put(bucket, key, value) }); err != nil {
		t.Fatal(err)
	}
}

func (e *testEnv) userRecord(t testing.TB, name string) *userRecord {
	t.Helper()
	var rec *userRecord
	err := e.s.db.View(func(tx kvTx) error {
		var err error
		rec, err = e.s.getUser(tx, name)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// kdfRuns is how many argon2id computations the store has started.
func (e *testEnv) kdfRuns() int64 { return e.s.hash.runs.Load() }

// countOK runs n attempts in parallel and reports how many succeeded; any
// error other than ErrUnauthorized fails the test.
func countOK(t *testing.T, n int, attempt func(i int) error) int {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ok := 0
	var unexpected []error
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			err := attempt(i)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrUnauthorized):
				unexpected = append(unexpected, err)
			}
		}()
	}
	wg.Wait()
	if len(unexpected) > 0 {
		t.Fatalf("unexpected errors: %v", unexpected[0])
	}
	return ok
}

func (e *testEnv) appPwRecord(t testing.TB, userID, id string) appPwRecord {
	t.Helper()
	var rec appPwRecord
	data := e.rawGet(t, bAppPw, appPwKey(userID, id))
	if err := json.Unmarshal(data, &rec); err != nil {
		t.Fatalf("app password record %s/%s: %v", userID, id, err)
	}
	return rec
}

// assertNoSecret fails if the JSON form of v contains any of the secrets,
// with or without the spaces they are shown with.
func assertNoSecret(t testing.TB, v any, secrets ...string) {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets {
		for _, form := range []string{s, strings.ReplaceAll(s, " ", "")} {
			if form != "" && strings.Contains(string(data), form) {
				t.Fatalf("JSON %s contains secret %q", data, form)
			}
		}
	}
}
