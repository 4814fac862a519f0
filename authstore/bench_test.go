package authstore

import (
	"context"
	"crypto/rand"
	"fmt"
	"testing"
	"time"
)

// BenchmarkVerifyAppPassword shows A7: verifying one app password costs
// the same whether the user has 1 or 50. The ratio is logged at the end.
func BenchmarkVerifyAppPassword(b *testing.B) {
	perOp := map[int]time.Duration{}
	for _, n := range []int{1, 50} {
		b.Run(fmt.Sprintf("n=%d", n), func(b *testing.B) {
			e := newTestStore(b)
			e.addUser(b, "alice")
			var secret string
			for range n {
				_, secret = e.addAppPassword(b, "alice")
			}
			a := Attempt{Protocol: IMAP, Username: "alice", Secret: secret, Source: addr("192.0.2.1")}
			for b.Loop() {
				if _, err := e.s.Authenticate(bg, a); err != nil {
					b.Fatal(err)
				}
			}
			perOp[n] = b.Elapsed() / time.Duration(b.N)
		})
	}
	if perOp[1] > 0 {
		b.Logf("n=50 / n=1 = %.2f", float64(perOp[50])/float64(perOp[1]))
	}
}

// BenchmarkVerifyAppPasswordUncached is the same login with the decision
// cache emptied before each one (as after any store write): the store's
// own cost, against which the cached hot path is logged.
func BenchmarkVerifyAppPasswordUncached(b *testing.B) {
	e := newTestStore(b)
	e.addUser(b, "alice")
	_, secret := e.addAppPassword(b, "alice")
	a := Attempt{Protocol: CalDAV, Username: "alice", Secret: secret, Source: addr("192.0.2.1")}
	perOp := map[bool]time.Duration{}
	for _, cached := range []bool{true, false} {
		b.Run(map[bool]string{true: "cached", false: "uncached"}[cached], func(b *testing.B) {
			for b.Loop() {
				if !cached {
					e.s.hot.invalidate()
				}
				if _, err := e.s.Authenticate(bg, a); err != nil {
					b.Fatal(err)
				}
			}
			perOp[cached] = b.Elapsed() / time.Duration(b.N)
		})
	}
	if perOp[true] > 0 {
		b.Logf("uncached / cached = %.2f", float64(perOp[false])/float64(perOp[true]))
	}
}

// benchUsers is the size of BenchmarkAuthenticate's store.
const benchUsers, benchAppPasswords = 10_000, 3

type benchFixture struct {
	e       *testEnv
	names   []string
	secrets [][]string // per user
}

// newBenchFixture writes the users and app passwords straight through the
// kv layer in one transaction: hashing 10,000 passwords with the real KDF
// would take minutes, so every user shares one defaultKDF hash (the cost
// of checking it is what is measured, not its uniqueness).
func newBenchFixture(b *testing.B) *benchFixture {
	b.Helper()
	e := newTestStore(b)
	h := newHasher(defaultKDF)
	hash, err := h.hashPassword(context.Background(), rand.Reader, goodPassword)
	if err != nil {
		b.Fatal(err)
	}
	f := &benchFixture{e: e}
	now := e.clock.Now().UTC()
	err = e.s.db.Update(func(tx kvTx) error {
		for i := range benchUsers {
			name := fmt.Sprintf("user%05d", i)
			id, _ := newID(rand.Reader)
			rec := &userRecord{ID: id, Name: name, Role: RoleUser, PasswordHash: hash, Created: now, Updated: now}
			if err := putJSON(tx, bUsers, name, rec); err != nil {
				return err
			}
			var secrets []string
			for range benchAppPasswords {
				secret, _ := newAppPassword(rand.Reader)
				apID, _ := newID(rand.Reader)
				d := newMacPool(e.keys.Pepper).hexDigest(id, secret)
				ap := &appPwRecord{ID: apID, UserID: id, User: name, Name: "bench", Scopes: AllScopes, Created: now, Digest: d}
				if err := putJSON(tx, bAppPw, appPwKey(id, apID), ap); err != nil {
					return err
				}
				if err := tx.Put(bAppPwIndex, d, []byte(appPwKey(id, apID))); err != nil {
					return err
				}
				secrets = append(secrets, FormatGrouped(secret, 4))
			}
			f.names = append(f.names, name)
			f.secrets = append(f.secrets, secrets)
		}
		return nil
	})
	if err != nil {
		b.Fatal(err)
	}
	return f
}

// BenchmarkAuthenticate measures the decision on a store of 10,000 users
// with 3 app passwords each: the app-password path (one HMAC and a few
// reads) and the account-password path (argon2id at defaultKDF).
func BenchmarkAuthenticate(b *testing.B) {
	f := newBenchFixture(b)
	perOp := map[string]time.Duration{}
	run := func(name string, secret func(i int) string) {
		b.Run(name, func(b *testing.B) {
			i := 0
			for b.Loop() {
				u := i % benchUsers
				a := Attempt{Protocol: IMAP, Username: f.names[u], Secret: secret(i), Source: addr("192.0.2.1")}
				if _, err := f.e.s.Authenticate(bg, a); err != nil {
					b.Fatal(err)
				}
				i++
			}
			perOp[name] = b.Elapsed() / time.Duration(b.N)
		})
	}
	run("app_password", func(i int) string { return f.secrets[i%benchUsers][i%benchAppPasswords] })
	run("account_password", func(int) string { return goodPassword })
	if perOp["app_password"] > 0 {
		b.Logf("account_password / app_password = %.0f", float64(perOp["account_password"])/float64(perOp["app_password"]))
	}
}
