package authstore

import (
	"bytes"
	"crypto/rand"
	"encoding/base32"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"
)

// TestA4_TOTPSingleUse: a TOTP code is accepted once — sequentially, under
// concurrency, and across a restart.
func TestA4_TOTPSingleUse(t *testing.T) {
	t.Run("same code twice", func(t *testing.T) {
		e := newTestStore(t)
		e.addUser(t, "alice")
		secret, _ := e.enableTOTP(t, "alice")
		code := totpCode(t, secret, e.clock.Now())
		if _, err := e.second("alice", code, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		for _, c := range []string{code, code[:3] + " " + code[3:], totpCode(t, secret, e.clock.Now().Add(-30*time.Second))} {
			if _, err := e.second("alice", c, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("replay of %q: %v", c, err)
			}
		}
		e.clock.Advance(30 * time.Second)
		if _, err := e.second("alice", totpCode(t, secret, e.clock.Now()), "192.0.2.1"); err != nil {
			t.Fatalf("next step's code: %v", err)
		}
	})
	t.Run("20 parallel sign-ins", func(t *testing.T) {
		e := newTestStore(t)
		frozenSleep(e) // the code must stay inside its window
		e.addUser(t, "alice")
		secret, _ := e.enableTOTP(t, "alice")
		code := totpCode(t, secret, e.clock.Now())
		ok := countOK(t, 20, func(i int) error {
			_, err := e.second("alice", code, fmt.Sprintf("192.0.2.%d", i+1))
			return err
		})
		if ok != 1 {
			t.Fatalf("%d of 20 parallel uses succeeded, want exactly 1", ok)
		}
	})
	t.Run("restart", func(t *testing.T) {
		e := newTestStore(t)
		e.addUser(t, "alice")
		secret, _ := e.enableTOTP(t, "alice")
		code := totpCode(t, secret, e.clock.Now())
		if _, err := e.second("alice", code, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		e.reopen(t)
		if _, err := e.second("alice", code, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("replay after restart: %v", err)
		}
	})
}

// TestA5_NoFactorCache: nothing remembers a factor result; a used code is
// refused however many successful logins came in between.
func TestA5_NoFactorCache(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	secret, codes := e.enableTOTP(t, "alice")
	_, app := e.addAppPassword(t, "alice")
	totp := totpCode(t, secret, e.clock.Now())
	used := []string{totp, codes[0]}
	for _, c := range used {
		if _, err := e.second("alice", c, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
	}
	warm := []func() error{
		func() error { _, err := e.login("alice", goodPassword, Web, "192.0.2.1"); return err },
		func() error { _, err := e.login("alice", app, IMAP, "192.0.2.1"); return err },
		func() error { _, err := e.second("alice", codes[1], "192.0.2.1"); return err },
	}
	for i, w := range warm {
		if err := w(); err != nil {
			t.Fatalf("successful step %d: %v", i, err)
		}
	}
	for _, c := range used {
		t.Run(c, func(t *testing.T) {
			for range 3 {
				if _, err := e.second("alice", c, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
					t.Fatalf("replay: %v", err)
				}
			}
		})
	}
}

// TestA6_BackupCodes: single use under concurrency, a new set voids the
// old one, and the file holds no plaintext code.
func TestA6_BackupCodes(t *testing.T) {
	e := newTestStore(t, withLimits(Limits{UserBudget: 1000}))
	e.addUser(t, "alice")
	_, codes := e.enableTOTP(t, "alice")
	admin, err := e.s.IssueAdminCode(bg, "alice", 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Run("50 parallel uses", func(t *testing.T) {
		for _, code := range []string{codes[0], admin} {
			ok := countOK(t, 50, func(i int) error {
				_, err := e.second("alice", code, fmt.Sprintf("10.6.0.%d", i+1))
				return err
			})
			if ok != 1 {
				t.Fatalf("%d of 50 parallel uses of one code succeeded, want 1", ok)
			}
		}
	})
	t.Run("no plaintext in the file", func(t *testing.T) {
		fresh, err := e.s.GenerateBackupCodes(bg, "alice")
		if err != nil {
			t.Fatal(err)
		}
		admin2, err := e.s.IssueAdminCode(bg, "alice", 0)
		if err != nil {
			t.Fatal(err)
		}
		e.reopen(t) // the file as a backup or a thief would read it
		data, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range append(append(fresh, admin2), codes...) {
			for _, form := range []string{c, strings.ReplaceAll(c, " ", "")} {
				if bytes.Contains(data, []byte(form)) {
					t.Fatalf("file contains code %q", form)
				}
			}
		}
	})
	t.Run("old set refused after regeneration", func(t *testing.T) {
		for _, c := range codes[1:] {
			if _, err := e.second("alice", c, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
				t.Fatalf("old code %s: %v", c, err)
			}
		}
	})
}

// TestA7_NoSecretAfterCreation: after creation no call returns a secret,
// digest or hash.
func TestA7_NoSecretAfterCreation(t *testing.T) {
	e := newTestStore(t)
	u := e.addUser(t, "alice")
	if err := e.s.SetUpstreamPassword(bg, "alice", "upstream secret"); err != nil {
		t.Fatal(err)
	}
	ap, app := e.addAppPassword(t, "alice")
	totpSecret, codes := e.enableTOTP(t, "alice")
	admin, _ := e.s.IssueAdminCode(bg, "alice", 0)
	e.login("alice", app, IMAP, "192.0.2.1")
	e.s.FlushAudit()
	rec := e.userRecord(t, "alice")
	secrets := append([]string{goodPassword, "upstream secret", app, totpSecret, admin,
		rec.PasswordHash, e.appPwRecord(t, u.ID, ap.ID).Digest,
		base64.StdEncoding.EncodeToString(rec.TOTP.Sealed)}, codes...)
	secrets = append(secrets, rec.Backup.Digests...)
	users, _ := e.s.ListUsers(bg)
	user, _ := e.s.GetUser(bg, "alice")
	apps, _ := e.s.ListAppPasswords(bg, "alice")
	events, _ := e.s.AuditTail(bg, 1000)
	policy, _ := e.s.Policy(bg)
	for name, v := range map[string]any{"ListUsers": users, "GetUser": user, "ListAppPasswords": apps,
		"AuditTail": events, "Policy": policy} {
		t.Run(name, func(t *testing.T) { assertNoSecret(t, v, secrets...) })
	}
}

// countingKV counts reads, so the cost of a verification can be compared
// without a clock.
type countingKV struct {
	kv
	gets, scans int
}

type countingTx struct {
	kvTx
	c *countingKV
}

func (c *countingKV) View(fn func(kvTx) error) error {
	return c.kv.View(func(tx kvTx) error { return fn(countingTx{tx, c}) })
}

func (t countingTx) Get(bucket, key string) []byte { t.c.gets++; return t.kvTx.Get(bucket, key) }

func (t countingTx) Scan(bucket, prefix string, fn func(string, []byte) error) error {
	t.c.scans++
	return t.kvTx.Scan(bucket, prefix, fn)
}

// TestA7_VerifyCostFlat: verifying an app password costs the same work
// whether the user has 1 or 50: one HMAC, the same few reads, no scan and
// no KDF (the benchmark shows the time).
func TestA7_VerifyCostFlat(t *testing.T) {
	type cost struct{ gets, scans, hmacs, kdf int64 }
	measure := func(n int) cost {
		e := newTestStore(t)
		e.addUser(t, "alice")
		var secret string
		for range n {
			_, secret = e.addAppPassword(t, "alice")
		}
		c := &countingKV{kv: e.s.db}
		e.s.db = c
		kdf, hmacs := e.kdfRuns(), e.s.digests.Load()
		if _, err := e.login("alice", secret, IMAP, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		return cost{int64(c.gets), int64(c.scans), e.s.digests.Load() - hmacs, e.kdfRuns() - kdf}
	}
	one, fifty := measure(1), measure(50)
	t.Logf("cost of one verification with 1 app password %+v, with 50 %+v", one, fifty)
	// The reads: the policy, the user, the index entry and the record.
	if one != fifty || one != (cost{gets: 4, hmacs: 1}) {
		t.Fatalf("cost with 1 app password %+v, with 50 %+v; want {gets:4 hmacs:1} for both", one, fifty)
	}
}

// TestA7_PepperUsed: the digest is keyed by the pepper, which lives outside
// the database: the same file opened with another pepper does not verify
// the app password, and with the right one it does again.
func TestA7_PepperUsed(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	_, secret := e.addAppPassword(t, "alice")
	other := *e.keys
	other.Pepper = bytes.Repeat([]byte{0x5a}, len(e.keys.Pepper))
	e.reopen(t, func(o *Options) { o.Keys = &other })
	if _, err := e.login("alice", secret, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("app password under another pepper: %v, want ErrUnauthorized", err)
	}
	e.reopen(t, func(o *Options) { o.Keys = e.keys })
	if _, err := e.login("alice", secret, IMAP, "192.0.2.1"); err != nil {
		t.Fatalf("app password under its own pepper: %v", err)
	}
}

// TestA13_SealedSecrets: the file reveals no TOTP secret, a ciphertext
// moved to another user does not open, and a wrong key denies instead of
// downgrading.
func TestA13_SealedSecrets(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	aliceSecret, _ := e.enableTOTP(t, "alice")
	bobSecret, _ := e.enableTOTP(t, "bob")
	t.Run("file holds no secret", func(t *testing.T) {
		pending, err := e.s.BeginTOTP(bg, mustCreate(t, e, "carol"))
		if err != nil {
			t.Fatal(err)
		}
		e.reopen(t)
		data, err := os.ReadFile(e.path)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range []string{aliceSecret, bobSecret, pending.Secret} {
			raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(s)
			if err != nil {
				t.Fatal(err)
			}
			for _, form := range append(encodedForms([]byte(s)), encodedForms(raw)...) {
				if bytes.Contains(data, form.b) {
					t.Fatalf("file contains TOTP secret %d %s", i, form.name)
				}
			}
		}
	})
	t.Run("Alice's ciphertext in Bob's record", func(t *testing.T) {
		alice := e.userRecord(t, "alice")
		bob := e.userRecord(t, "bob")
		bob.TOTP.Sealed = alice.TOTP.Sealed
		data, _ := json.Marshal(bob)
		e.rawPut(t, bUsers, "bob", data)
		e.clock.Advance(30 * time.Second)
		if _, err := e.second("bob", totpCode(t, aliceSecret, e.clock.Now()), "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("Bob with Alice's secret: %v", err)
		}
		if _, err := e.second("alice", totpCode(t, aliceSecret, e.clock.Now()), "192.0.2.1"); err != nil {
			t.Fatalf("Alice's own code: %v", err)
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		other, err := NewKeys(rand.Reader)
		if err != nil {
			t.Fatal(err)
		}
		e.reopen(t, func(o *Options) { o.Keys = other })
		e.clock.Advance(30 * time.Second)
		if _, err := e.second("alice", totpCode(t, aliceSecret, e.clock.Now()), "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("code under the wrong key: %v", err)
		}
		if _, err := e.login("alice", goodPassword, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
			t.Fatalf("account password over IMAP under the wrong key: %v", err)
		}
		if u, _ := e.s.GetUser(bg, "alice"); !u.MFA.Enabled {
			t.Fatal("second factor reported off under the wrong key")
		}
	})
}

func mustCreate(t *testing.T, e *testEnv, name string) string {
	t.Helper()
	e.addUser(t, name)
	return name
}

type encodedForm struct {
	name string
	b    []byte
}

// encodedForms are the ways secret could appear in a file: raw, as hex,
// as base32 (the otpauth URI's form), and as base64 inside a longer
// base64 value (JSON stores []byte so) at each of the three alignments
// it can take there: only the characters that depend on the secret alone
// are kept.
func encodedForms(secret []byte) []encodedForm {
	forms := []encodedForm{
		{"raw", secret},
		{"as hex", []byte(hex.EncodeToString(secret))},
		{"as upper-case hex", []byte(strings.ToUpper(hex.EncodeToString(secret)))},
		{"as base32", []byte(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(secret))},
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding} {
		for shift := range 3 {
			full := enc.EncodeToString(append(make([]byte, shift), secret...))
			start := 0
			if shift > 0 {
				start = 4 // the first group mixes in the bytes before the secret
			}
			end := len(full) - 4 // the last group may mix in the bytes after it
			if end-start >= 8 {
				forms = append(forms, encodedForm{fmt.Sprintf("in base64 at offset %d mod 3", shift), []byte(full[start:end])})
			}
		}
	}
	return forms
}
