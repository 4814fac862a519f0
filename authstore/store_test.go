package authstore

import (
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestS3_SecondOpenLocked: a second instance gets ErrLocked after the lock
// timeout instead of hanging, and opens once the first one is gone.
// TestS3_SecondOpenLocked: a second instance gets ErrLocked, not a hang,
// with the configured lock timeout and with the default one. The test
// bounds the wait itself, so a lock wait without end fails here with a
// message instead of hanging until the test binary's timeout.
func TestS3_SecondOpenLocked(t *testing.T) {
	const hang = 10 * time.Second // far beyond either lock timeout
	tests := []struct {
		name    string
		timeout time.Duration // 0: the default
	}{
		{"configured lock timeout", 100 * time.Millisecond},
		{"default lock timeout", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e := newTestStore(t)
			e.addUser(t, "alice")
			opts := e.opts
			opts.LockTimeout = tc.timeout
			done := make(chan error, 1)
			go func() {
				s, err := Open(e.path, opts)
				if err == nil {
					s.Close()
				}
				done <- err
			}()
			select {
			case err := <-done:
				if !errors.Is(err, ErrLocked) {
					t.Fatalf("second open: %v, want ErrLocked", err)
				}
			case <-time.After(hang):
				t.Fatalf("second open still waiting for the lock after %s", hang)
			}
			e.reopen(t)
			if _, err := e.s.GetUser(bg, "alice"); err != nil {
				t.Fatalf("after the first instance closed: %v", err)
			}
		})
	}
}

// corruptFixture writes a populated store and returns its bytes.
func corruptFixture(t *testing.T) (*testEnv, []byte) {
	t.Helper()
	e := newTestStore(t)
	for i := range 40 {
		e.addUser(t, fmt.Sprint("user", i))
	}
	e.addAppPassword(t, "user1")
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(e.path)
	if err != nil {
		t.Fatal(err)
	}
	return e, data
}

const testPageSize = 4096

// openDamaged writes data to a new file and opens it, turning a panic
// into a test failure rather than a crash of the whole run.
func openDamaged(t *testing.T, e *testEnv, data []byte) (err error) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "damaged.db")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if r := recover(); r != nil {
			t.Fatalf("Open panicked: %v", r)
		}
	}()
	s, err := Open(path, e.opts)
	if err == nil {
		s.Close()
	}
	return err
}

func flip(data []byte, off, n int) {
	for i := off; i < off+n && i < len(data); i++ {
		data[i] ^= 0xff
	}
}

func TestS3_CorruptFile(t *testing.T) {
	e, orig := corruptFixture(t)
	pages := len(orig) / testPageSize
	tests := []struct {
		name   string
		damage func(d []byte) []byte
	}{
		{"flipped page headers in the middle", func(d []byte) []byte {
			for p := pages / 4; p < 3*pages/4; p++ {
				flip(d, p*testPageSize, 16)
			}
			return d
		}},
		{"flipped bytes across the middle", func(d []byte) []byte {
			flip(d, len(d)/4, len(d)/2)
			return d
		}},
		{"damaged header", func(d []byte) []byte {
			flip(d, 16, 32)
			flip(d, testPageSize+16, 32)
			return d
		}},
		{"truncated", func(d []byte) []byte { return d[:testPageSize+100] }},
		{"not a database", func([]byte) []byte { return []byte(strings.Repeat("postern\n", 2000)) }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := openDamaged(t, e, tc.damage(append([]byte(nil), orig...)))
			if !errors.Is(err, ErrCorrupt) {
				t.Fatalf("err = %v, want ErrCorrupt", err)
			}
		})
	}
}

// TestS3_FlippedPageSweep damages each page in turn: whatever bbolt makes
// of it, Open answers with an error or a usable store, never a crash.
func TestS3_FlippedPageSweep(t *testing.T) {
	e, orig := corruptFixture(t)
	refused := 0
	for p := range len(orig) / testPageSize {
		for _, off := range []int{0, 8, 12, testPageSize / 2} {
			d := append([]byte(nil), orig...)
			flip(d, p*testPageSize+off, 4)
			err := openDamaged(t, e, d)
			switch {
			case err == nil:
			case errors.Is(err, ErrCorrupt):
				refused++
			default:
				t.Fatalf("page %d offset %d: %v, want ErrCorrupt or success", p, off, err)
			}
		}
	}
	if refused == 0 {
		t.Fatal("no damaged page was noticed")
	}
}

func TestS3_SchemaVersion(t *testing.T) {
	e := newTestStore(t)
	e.rawPut(t, bMeta, "schema", []byte(strconv.Itoa(schemaVersion+1)))
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := Open(e.path, e.opts); !errors.Is(err, ErrSchema) {
		t.Fatalf("err = %v, want ErrSchema", err)
	}
}

func TestOpenOptions(t *testing.T) {
	dir := t.TempDir()
	keys, _ := NewKeys(rand.Reader)
	tests := []struct {
		name string
		opts Options
	}{
		{"no keys", Options{}},
		{"short sealing key", Options{Keys: &Keys{Version: 1, Pepper: make([]byte, 32), Seal: make([]byte, 7)}}},
		{"zero KDF time", Options{Keys: keys, KDF: KDFParams{Memory: 64, Threads: 1}}},
		{"absurd KDF memory", Options{Keys: keys, KDF: KDFParams{Memory: 1 << 31, Time: 1, Threads: 1}}},
	}
	for i, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(filepath.Join(dir, fmt.Sprint(i), "x.db"), tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("opened")
			}
		})
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "keys", "postern.key")
	created, err := CreateKeyFile(path, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("mode 0600", func(t *testing.T) {
		st, err := os.Stat(path)
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Fatalf("mode %v, %v", st.Mode(), err)
		}
		if st, _ := os.Stat(filepath.Dir(path)); st.Mode().Perm() != 0o700 {
			t.Fatalf("parent mode %v", st.Mode())
		}
	})
	t.Run("round trip", func(t *testing.T) {
		loaded, err := LoadKeyFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if loaded.Version != created.Version || string(loaded.Pepper) != string(created.Pepper) ||
			string(loaded.Seal) != string(created.Seal) || len(loaded.Seal) != 32 {
			t.Fatal("loaded keys differ")
		}
	})
	t.Run("refuses overwrite", func(t *testing.T) {
		before, _ := os.ReadFile(path)
		if _, err := CreateKeyFile(path, rand.Reader); !errors.Is(err, ErrKeyFile) {
			t.Fatalf("err = %v", err)
		}
		if after, _ := os.ReadFile(path); string(after) != string(before) {
			t.Fatal("key file changed")
		}
	})
	bad := []struct {
		name    string
		content string
		mode    os.FileMode
	}{
		{"readable by others", "", 0o644},
		{"group readable", "", 0o640},
		{"garbage", "not json at all", 0o600},
		{"other format", `{"format":"something-else","version":1}`, 0o600},
		{"short pepper", `{"format":"postern-keys-v1","version":1,"pepper":"AAAA","seal":"` + strings.Repeat("A", 43) + `="}`, 0o600},
		{"bad base64", `{"format":"postern-keys-v1","version":1,"pepper":"!!","seal":"!!"}`, 0o600},
		{"version zero", `{"format":"postern-keys-v1","version":0,"pepper":"` + strings.Repeat("A", 43) + `=","seal":"` + strings.Repeat("A", 43) + `="}`, 0o600},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_"))
			content, _ := os.ReadFile(path)
			if tc.content != "" {
				content = []byte(tc.content)
			}
			if err := os.WriteFile(p, content, tc.mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.mode); err != nil {
				t.Fatal(err)
			}
			if _, err := LoadKeyFile(p); !errors.Is(err, ErrKeyFile) {
				t.Fatalf("err = %v, want ErrKeyFile", err)
			}
		})
	}
	t.Run("missing", func(t *testing.T) {
		if _, err := LoadKeyFile(filepath.Join(dir, "nope")); !errors.Is(err, ErrKeyFile) {
			t.Fatalf("err = %v", err)
		}
	})
}

// TestS3_StaleFreePagesAreNoDamage: a deleted value that spanned several
// pages leaves its old bytes in them; once a later write reuses its first
// page, the rest are free pages whose first bytes are no page header at
// all. bbolt never reads a free page, and neither may the check at open:
// such a store opens. (Large freelists, written over several pages at each
// commit, leave the same behind in every busy store.)
func TestS3_StaleFreePagesAreNoDamage(t *testing.T) {
	e := newTestStore(t)
	e.rawPut(t, bMeta, "big", []byte(strings.Repeat("x", 64*testPageSize)))
	if err := e.s.db.Update(func(tx kvTx) error { return tx.Delete(bMeta, "big") }); err != nil {
		t.Fatal(err)
	}
	// Each write takes free pages from the lowest up, so the first few work
	// their way into the deleted value's; every state on the way must open.
	for i := range 10 {
		e.addUser(t, fmt.Sprint("user", i))
		e.reopen(t)
	}
}
