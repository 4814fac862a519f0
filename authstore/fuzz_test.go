package authstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"unicode"
	"unicode/utf8"
)

func FuzzCanonicalUsername(f *testing.F) {
	for _, s := range []string{"alice", "ALICE", "ａｌｉｃｅ", " Alice ", "bob@example.org", "a b", "a/b",
		"\u0130stanbul", "Ꭰ", "ꭰ", "ᏸ", "ﬀ", "\u0345", "ß", "e\u0301", "\x00", "\u200b", "ǅ", "ᾈ", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, err := CanonicalUsername(s)
		if err != nil {
			if out != "" {
				t.Fatalf("error with output %q", out)
			}
			return
		}
		if out == "" || !utf8.ValidString(out) || utf8.RuneCountInString(out) > maxUsernameLen {
			t.Fatalf("CanonicalUsername(%q) = %q", s, out)
		}
		for _, r := range out {
			if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) || unicode.IsSpace(r) || r == '/' {
				t.Fatalf("CanonicalUsername(%q) = %q keeps %U", s, out, r)
			}
		}
		again, err := CanonicalUsername(out)
		if err != nil || again != out {
			t.Fatalf("not idempotent: %q → %q → %q (%v)", s, out, again, err)
		}
	})
}

func FuzzNormalizeAppPassword(f *testing.F) {
	for _, s := range []string{"abcd efgh ijkl mnop qrst uvwx", "ABCD-EFGH-IJKL-MNOP-QRST-UVWX",
		"abcdefghijklmnopqrstuvwx", "abcd efgh ijkl mnop qrst uvw", "abcd efgh ijkl mnop qrst uvwxy",
		"abcd\tefgh ijkl mnop qrst uvwx", "äbcd efgh ijkl mnop qrst uvwx", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out, ok := normalizeAppPassword(s)
		if !ok {
			if out != "" {
				t.Fatalf("not ok with output %q", out)
			}
			return
		}
		if len(out) != appPasswordLen || strings.IndexFunc(out, func(r rune) bool { return r < 'a' || r > 'z' }) >= 0 {
			t.Fatalf("normalizeAppPassword(%q) = %q", s, out)
		}
		for _, form := range []string{out, FormatGrouped(out, 4), strings.ToUpper(FormatGrouped(out, 6))} {
			if again, ok := normalizeAppPassword(form); !ok || again != out {
				t.Fatalf("%q normalises to %q, %v; want %q", form, again, ok, out)
			}
		}
	})
}

func FuzzNormalizeCode(f *testing.F) {
	for _, s := range []string{"123456", "123 456", "1234 5678 9012", "1234-5678-9012", "12345", "１２３４５６", "12a456", ""} {
		f.Add(s, uint8(6))
		f.Add(s, uint8(12))
	}
	f.Fuzz(func(t *testing.T, s string, n uint8) {
		size := int(n%24) + 1
		out, ok := normalizeCode(s, size)
		if !ok {
			if out != "" {
				t.Fatalf("not ok with output %q", out)
			}
			return
		}
		if len(out) != size || strings.IndexFunc(out, func(r rune) bool { return r < '0' || r > '9' }) >= 0 {
			t.Fatalf("normalizeCode(%q, %d) = %q", s, size, out)
		}
		for _, form := range []string{out, FormatGrouped(out, 4), strings.ReplaceAll(FormatGrouped(out, 3), " ", "-")} {
			if again, ok := normalizeCode(form, size); !ok || again != out {
				t.Fatalf("%q normalises to %q, %v; want %q", form, again, ok, out)
			}
		}
	})
}

// FuzzUserRecord stores arbitrary bytes as a user record and drives every
// reader of it: a damaged record must give an error or a denial, never a
// panic.
func FuzzUserRecord(f *testing.F) {
	e := newTestStore(f, withLimits(Limits{UserBudget: 1 << 30, PairBudget: 1 << 30, SourceFree: 1 << 30}))
	frozenSleep(e)
	e.addUser(f, "alice")
	e.enableTOTP(f, "alice")
	if _, err := e.s.IssueAdminCode(bg, "alice", 0); err != nil {
		f.Fatal(err)
	}
	good := e.rawGet(f, bUsers, "alice")
	f.Add(good)
	for _, cut := range []int{1, len(good) / 3, len(good) / 2, len(good) - 1} {
		f.Add(good[:cut])
	}
	for _, mut := range []func(*userRecord){
		func(r *userRecord) { r.Backup.Used = r.Backup.Used[:2] },
		func(r *userRecord) { r.AdminCode.Digests = append(r.AdminCode.Digests, "zz") },
		func(r *userRecord) { r.PasswordHash = "$argon2id$v=19$m=64,t=0,p=1$c2FsdA$aGFzaA" },
		func(r *userRecord) { r.PasswordHash = "$argon2id$v=19$m=64,t=1,p=0$c2FsdA$aGFzaA" },
		func(r *userRecord) { r.Backup.KDF = KDFParams{Memory: 64} },
		func(r *userRecord) { r.TOTP.Sealed = r.TOTP.Sealed[:10] },
		func(r *userRecord) { r.TOTP.Sealed = nil },
	} {
		var rec userRecord
		if err := json.Unmarshal(good, &rec); err != nil {
			f.Fatal(err)
		}
		mut(&rec)
		data, _ := json.Marshal(rec)
		f.Add(data)
	}
	e.s.db = copyToMem(f, e.s.db)
	f.Fuzz(func(t *testing.T, data []byte) {
		e.rawPut(t, bUsers, "alice", data)
		_, err := e.s.GetUser(bg, "alice")
		if json.Unmarshal(data, new(userRecord)) != nil && !errors.Is(err, ErrUnavailable) {
			t.Fatalf("undecodable record: GetUser err = %v, want ErrUnavailable", err)
		}
		e.s.ListUsers(bg)
		e.s.ListAppPasswords(bg, "alice")
		e.second("alice", "123456", "192.0.2.1")
		if cheapRecord(data) {
			e.login("alice", goodPassword, IMAP, "192.0.2.1")
			e.second("alice", "1234 5678 9012", "192.0.2.1")
		}
	})
}

// cheapRecord reports whether every KDF cost in the record is small, so
// fuzzing spends its time on parsing rather than on a valid but costly
// argon2id; the bound itself is tested by the seeds above.
func cheapRecord(data []byte) bool {
	var rec userRecord
	if json.Unmarshal(data, &rec) != nil {
		return true // refused before any KDF
	}
	for _, set := range []*codeSet{rec.Backup, rec.AdminCode} {
		if set != nil && (set.KDF.Memory > 1024 || set.KDF.Time > 2) {
			return false
		}
	}
	var p KDFParams
	if parts := strings.Split(rec.PasswordHash, "$"); len(parts) == 6 {
		if _, err := fmt.Sscanf(parts[3], "m=%d,t=%d,p=%d", &p.Memory, &p.Time, &p.Threads); err == nil && (p.Memory > 1024 || p.Time > 2) {
			return false
		}
	}
	return true
}

// memKV is an in-memory kv, so a fuzz iteration costs no fsync. Update
// works on a copy and swaps it in on success, as a rollback would leave
// the data on failure.
type memKV struct {
	under kv // closed with the memKV
	mu    sync.RWMutex
	data  map[string]map[string][]byte
}

type memTx struct{ data map[string]map[string][]byte }

// copyToMem loads everything the store holds into a memKV.
func copyToMem(t testing.TB, src kv) *memKV {
	t.Helper()
	m := &memKV{under: src, data: map[string]map[string][]byte{}}
	err := src.View(func(tx kvTx) error {
		for _, b := range allBuckets {
			m.data[b] = map[string][]byte{}
			err := tx.Scan(b, "", func(k string, v []byte) error {
				m.data[b][k] = bytes.Clone(v)
				return nil
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Audit keys are their sequence numbers; carry the last one over.
	m.data[memSeqs] = map[string][]byte{}
	if keys := slices.Sorted(maps.Keys(m.data[bAudit])); len(keys) > 0 {
		n, _ := strconv.ParseUint(keys[len(keys)-1], 10, 64)
		m.data[memSeqs][bAudit] = []byte(strconv.FormatUint(n, 10))
	}
	return m
}

// memSeqs is the memKV bucket holding each bucket's sequence.
const memSeqs = "\x00seq"

func (m *memKV) View(fn func(kvTx) error) error {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return fn(memTx{m.data})
}

func (m *memKV) Update(fn func(kvTx) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	work := map[string]map[string][]byte{}
	for b, kvs := range m.data {
		work[b] = maps.Clone(kvs)
	}
	if err := fn(memTx{work}); err != nil {
		return err
	}
	m.data = work
	return nil
}

func (m *memKV) Close() error { return m.under.Close() }

func (t memTx) Get(bucket, key string) []byte { return t.data[bucket][key] }

func (t memTx) Put(bucket, key string, value []byte) error {
	t.data[bucket][key] = bytes.Clone(value)
	return nil
}

func (t memTx) Delete(bucket, key string) error {
	delete(t.data[bucket], key)
	return nil
}

func (t memTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	for _, k := range slices.Sorted(maps.Keys(t.data[bucket])) {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if err := fn(k, t.data[bucket][k]); err != nil {
			if errors.Is(err, errStopScan) {
				return nil
			}
			return err
		}
	}
	return nil
}

func (t memTx) NextSequence(bucket string) (uint64, error) {
	seqs := t.data[memSeqs]
	n, _ := strconv.ParseUint(string(seqs[bucket]), 10, 64)
	seqs[bucket] = []byte(strconv.FormatUint(n+1, 10))
	return n + 1, nil
}

func (m *memKV) Copy(io.Writer, func(kvTx) error) (int64, error) {
	return 0, errors.New("memKV: no copies")
}

func (t memTx) SetSequence(bucket string, n uint64) error {
	t.data[memSeqs][bucket] = []byte(strconv.FormatUint(n, 10))
	return nil
}

func (t memTx) Last(bucket string) (string, []byte) {
	keys := slices.Sorted(maps.Keys(t.data[bucket]))
	if len(keys) == 0 {
		return "", nil
	}
	return keys[len(keys)-1], t.data[bucket][keys[len(keys)-1]]
}
