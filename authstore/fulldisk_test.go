package authstore

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/postern-dev/postern/internal/testpeer"
)

// TestS2_FullDiskFailsClosed: on a file system that is full, where reads
// go on and only writes that need new space fail, whatever cannot be
// recorded is refused as unavailable, charging nothing and consuming
// nothing: a TOTP code, a backup code, an admin change (no partial state,
// no session ended for a revocation that was not recorded). A wrong secret
// is still denied and charged, and a right app password, which writes
// nothing, still logs in. Once space is back everything works without
// reopening the store, the refused codes included, and after a reopen every
// acknowledged change is there.
func TestS2_FullDiskFailsClosed(t *testing.T) {
	dir := t.TempDir()
	testpeer.Tmpfs(t, dir, 4<<20)
	const budget = 3
	e := newTestStoreAt(t, filepath.Join(dir, "postern.db"), withLimits(Limits{UserBudget: budget, SourceFree: 1000}))
	e.addUser(t, "alice")
	e.addUser(t, "bob")
	totpSecret, codes := e.enableTOTP(t, "alice")
	kept, keptSecret := e.addAppPassword(t, "alice")
	_, liveSecret := e.addAppPassword(t, "alice")
	before, err := e.s.ListAppPasswords(bg, "alice")
	if err != nil {
		t.Fatal(err)
	}
	e.growMapping(t, 512<<10)
	e.s.FlushAudit()
	e.revs.take()

	filler, n := testpeer.FillDisk(t, dir)
	pins := e.pinVersions(t)
	code, signIns := e.totpUntilRefused(t, pins, "alice", totpSecret)
	t.Logf("filled the disk with %d bytes; %d TOTP sign-ins were recorded before one was refused", n, signIns)

	unavailable := func(what string, err error) {
		t.Helper()
		if !errors.Is(err, ErrUnavailable) {
			t.Errorf("%s on a full disk: %v, want ErrUnavailable", what, err)
		}
	}
	_, err = e.second("alice", codes[0], "192.0.2.1")
	unavailable("backup code", err)
	_, _, err = e.s.CreateAppPassword(bg, "alice", NewAppPassword{Name: "written on a full disk"})
	unavailable("creating an app password", err)
	unavailable("revoking an app password", e.s.RevokeAppPassword(bg, "alice", kept.ID))
	if after, err := e.s.ListAppPasswords(bg, "alice"); err != nil || len(after) != len(before) || !after[0].Revoked.IsZero() || !after[1].Revoked.IsZero() {
		t.Errorf("app passwords after the refused changes: %+v, %v; want the %d before, none revoked", after, err, len(before))
	}
	if revs := e.revs.take(); len(revs) != 0 {
		t.Errorf("an unrecorded revocation ended sessions: %+v", revs)
	}
	if _, err := e.login("alice", keptSecret, IMAP, "192.0.2.2"); err != nil {
		t.Errorf("the app password whose revocation was refused: %v, want it still valid", err)
	}
	if _, err := e.login("alice", liveSecret, IMAP, "192.0.2.2"); err != nil {
		t.Errorf("a right app password on a full disk: %v", err)
	}
	for i := range budget {
		if _, err := e.login("bob", fmt.Sprint("wrong ", i), IMAP, "192.0.2.3"); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrThrottled) {
			t.Errorf("wrong password %d on a full disk: %v, want denied", i, err)
		}
	}
	if _, err := e.login("bob", goodPassword, IMAP, "192.0.2.4"); !errors.Is(err, ErrThrottled) {
		t.Errorf("right password past the budget spent on a full disk: %v, want throttled", err)
	}

	pins.release()
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	if _, err := e.second("alice", code, "192.0.2.1"); err != nil {
		t.Errorf("the refused TOTP code once space is back: %v", err)
	}
	if _, err := e.second("alice", codes[0], "192.0.2.1"); err != nil {
		t.Errorf("the refused backup code once space is back: %v", err)
	}
	if err := e.s.RevokeAppPassword(bg, "alice", kept.ID); err != nil {
		t.Errorf("revoking once space is back: %v", err)
	}
	// What happened on the full disk, when no audit event could be
	// written, is in the log now: late, not lost.
	e.s.FlushAudit()
	for _, want := range []struct {
		kind, user, result string
		n                  int
	}{
		{"second_factor", "alice", "ok", signIns + 2}, {"second_factor", "alice", "unavailable", 2},
		{"login", "bob", "denied", budget}, {"login", "bob", "throttled", 1},
	} {
		if got := e.countEvents(t, want.kind, want.user, want.result); got != want.n {
			t.Errorf("%d %s events of %s with result %s in the audit log, want %d", got, want.kind, want.user, want.result, want.n)
		}
	}
	e.reopen(t)
	e.expectDenied(t, "the used TOTP code after a reopen", func() error { _, err := e.second("alice", code, "192.0.2.1"); return err })
	e.expectDenied(t, "the used backup code after a reopen", func() error { _, err := e.second("alice", codes[0], "192.0.2.1"); return err })
	e.expectDenied(t, "the revoked app password after a reopen", func() error { _, err := e.login("alice", keptSecret, IMAP, "192.0.2.5"); return err })
	if n, err := e.s.VerifyAudit(bg); err != nil {
		t.Errorf("audit chain after the full disk: %d events, %v", n, err)
	}
}

func (e *testEnv) countEvents(t *testing.T, kind, user, result string) int {
	t.Helper()
	evs, err := e.s.AuditTail(bg, 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind && ev.User == user && ev.Result == result {
			n++
		}
	}
	return n
}

func (e *testEnv) expectDenied(t *testing.T, what string, try func() error) {
	t.Helper()
	if err := try(); !errors.Is(err, ErrUnauthorized) || errors.Is(err, ErrUnavailable) {
		t.Errorf("%s: %v, want denied", what, err)
	}
}

// growMapping writes and deletes a value of size bytes, so the file and
// bbolt's mapping have room past the last page in use. A write that
// needed a larger mapping would wait for the reader pinFreedPages holds.
func (e *testEnv) growMapping(t *testing.T, size int) {
	t.Helper()
	e.rawPut(t, bMeta, "s2-room", []byte(strings.Repeat("x", size)))
	if err := e.s.db.Update(func(tx kvTx) error { return tx.Delete(bMeta, "s2-room") }); err != nil {
		t.Fatal(err)
	}
}

// pinnedVersions are read transactions held open, one begun before each
// write: bbolt reuses no page a reader may still see, so, as when logins
// keep reading while writes go on, every write needs pages that are free
// or new space at the end of the file.
type pinnedVersions struct {
	db  *bolt.DB
	txs []*bolt.Tx
}

func (e *testEnv) pinVersions(t *testing.T) *pinnedVersions {
	p := &pinnedVersions{db: e.s.db.(*boltKV).db}
	t.Cleanup(p.release)
	return p
}

// hold pins the current version of every page.
func (p *pinnedVersions) hold(t *testing.T) {
	t.Helper()
	tx, err := p.db.Begin(false)
	if err != nil {
		t.Fatal(err)
	}
	p.txs = append(p.txs, tx)
}

func (p *pinnedVersions) release() {
	for _, tx := range p.txs {
		tx.Rollback()
	}
	p.txs = nil
}

// totpUntilRefused signs user in with the code of each next TOTP step
// until the store refuses one for want of space (each accepted step is a
// write of the user's record), and returns that code, which stays the
// current one, and how many were accepted before it.
func (e *testEnv) totpUntilRefused(t *testing.T, pins *pinnedVersions, user, secret string) (string, int) {
	t.Helper()
	for i := range 10000 {
		e.clock.Advance(30 * time.Second)
		code := totpCode(t, secret, e.clock.Now())
		pins.hold(t)
		_, err := e.second(user, code, "192.0.2.1")
		if errors.Is(err, ErrUnavailable) {
			return code, i
		}
		if err != nil {
			t.Fatalf("TOTP sign-in %d on a full disk: %v, want it recorded or refused as unavailable", i, err)
		}
	}
	t.Fatal("10,000 TOTP sign-ins on a full disk were all accepted; none was refused as unavailable")
	return "", 0
}
