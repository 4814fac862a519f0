package authstore

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// restoreFrom closes the store, restores backup over its file, reopens
// it and returns the report.
func (e *testEnv) restoreFrom(t *testing.T, backup []byte, noReplay bool, confirm func(*RestoreReport) error) *RestoreReport {
	t.Helper()
	if err := e.s.Close(); err != nil {
		t.Fatal(err)
	}
	rep, err := Restore(bg, RestoreOptions{Options: e.opts, Path: e.path, Backup: bytes.NewReader(backup),
		NoReplay: noReplay, Confirm: confirm})
	if err != nil {
		t.Fatalf("restore: %v", err)
	}
	e.open(t)
	return rep
}

func kinds(cs []Change) map[string]int {
	m := map[string]int{}
	for _, c := range cs {
		m[c.Kind]++
	}
	return m
}

// TestS4_ReplayEveryTakeAway: after a backup, an app password is revoked,
// a password changed with every app password revoked, an account disabled,
// one deleted, a two-step verification reset and a backup code used;
// restoring the backup takes each away again, loses the app password made
// since (and says so), moves every TOTP step to now and keeps the audit
// chain whole. --no-replay instead brings them back, after naming them.
func TestS4_ReplayEveryTakeAway(t *testing.T) {
	e := newTestStore(t)
	for _, n := range []string{"ann", "ben", "cat", "dan", "eve", "fay"} {
		e.addUser(t, n)
	}
	annPw, annSecret := e.addAppPassword(t, "ann")
	_, benSecret := e.addAppPassword(t, "ben")
	e.enableTOTP(t, "eve")
	_, fayCodes := e.enableTOTP(t, "fay")
	var backup bytes.Buffer
	if _, err := e.s.Backup(bg, &backup, "test"); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(time.Hour)
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(e.s.RevokeAppPassword(bg, "ann", annPw.ID))
	must(e.s.SetPassword(bg, "ben", "a brand new password", true))
	must(e.s.SetDisabled(bg, "cat", true))
	must(e.s.DeleteUser(bg, "dan"))
	must(e.s.ResetMFA(bg, "eve"))
	if _, err := e.second("fay", fayCodes[0], "192.0.2.9"); err != nil {
		t.Fatal(err)
	}
	_, _, err := e.s.CreateAppPassword(bg, "ann", NewAppPassword{Name: "made later"})
	must(err)
	e.s.FlushAudit()

	rep := e.restoreFrom(t, backup.Bytes(), false, nil)
	if rep.Old != OldReplayed {
		t.Fatalf("old store: %s %s", rep.Old, rep.OldError)
	}
	want := map[string]int{"apppw.revoke": 1, "user.password": 1, "user.disable": 1, "user.delete": 1, "mfa.reset": 1, "second_factor": 1}
	if got := kinds(rep.Reapplied); len(got) != len(want) || got["apppw.revoke"] != 1 || got["second_factor"] != 1 {
		t.Errorf("re-applied %v (%+v), want %v", got, rep.Reapplied, want)
	}
	if kinds(rep.Lost)["apppw.create"] != 1 {
		t.Errorf("lost: %+v", rep.Lost)
	}
	if _, err := e.login("ann", annSecret, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ann's revoked app password: %v", err)
	}
	if _, err := e.login("ben", benSecret, IMAP, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ben's app password revoked with the password change: %v", err)
	}
	if _, err := e.login("ben", goodPassword, Web, "192.0.2.1"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("ben's old password: %v", err)
	}
	if _, err := e.login("ben", "a brand new password", Web, "192.0.2.1"); err != nil {
		t.Errorf("ben's new password: %v", err)
	}
	if u, _ := e.s.GetUser(bg, "cat"); !u.Disabled {
		t.Error("cat is enabled again")
	}
	if _, err := e.s.GetUser(bg, "dan"); !errors.Is(err, ErrNotFound) {
		t.Errorf("dan: %v", err)
	}
	if u, _ := e.s.GetUser(bg, "eve"); u.MFA.Enabled {
		t.Error("eve's reset two-step verification is back")
	}
	if _, err := e.second("fay", fayCodes[0], "192.0.2.9"); !errors.Is(err, ErrUnauthorized) {
		t.Errorf("fay's used backup code: %v", err)
	}
	if step := e.userRecord(t, "fay").TOTP.LastStep; step != e.clock.Now().Unix()/totpPeriod {
		t.Errorf("fay's last step %d, want now", step)
	}
	if _, err := e.s.VerifyAudit(bg); err != nil {
		t.Errorf("audit chain after the restore: %v", err)
	}

	// The restored store's log holds the backup's last event: restoring
	// the same backup with NoReplay brings everything back, after Confirm
	// was shown what.
	var shown []Change
	rep = e.restoreFrom(t, backup.Bytes(), true, func(r *RestoreReport) error { shown = r.Reapplied; return nil })
	if rep.Old != OldSkipped || len(shown) == 0 || kinds(shown)["apppw.revoke"] != 1 {
		t.Fatalf("no-replay: %s, shown %+v", rep.Old, shown)
	}
	if _, err := e.login("ann", annSecret, IMAP, "192.0.2.1"); err != nil {
		t.Errorf("no-replay did not bring ann's app password back: %v", err)
	}
	if _, err := e.s.VerifyAudit(bg); err != nil {
		t.Errorf("audit chain after the second restore: %v", err)
	}
}

// TestS7_RestoreRefusesOtherKeys: a backup restored beside another key
// file is refused with words, and the store is left as it was.
func TestS7_RestoreRefusesOtherKeys(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "ann")
	var backup bytes.Buffer
	if _, err := e.s.Backup(bg, &backup, "test"); err != nil {
		t.Fatal(err)
	}
	other := newTestStore(t)
	other.s.Close()
	_, err := Restore(bg, RestoreOptions{Options: other.opts, Path: other.path, Backup: &backup})
	if !errors.Is(err, ErrOtherKeys) {
		t.Fatalf("restore under other keys: %v", err)
	}
}

// TestAuditPruneKeepsChainVerifiable: pruning in batches deletes what is
// older than the cutoff, and the chain still verifies from the
// checkpoint; altering the first kept event is still found.
func TestAuditPruneKeepsChainVerifiable(t *testing.T) {
	e := newTestStore(t)
	for i := range pruneBatch + 10 {
		if err := e.s.Record(bg, Event{Kind: "test.old", Detail: string(rune('a' + i%26))}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(48 * time.Hour)
	cutoff := e.clock.Now().Add(-time.Hour)
	for range 5 {
		if err := e.s.Record(bg, Event{Kind: "test.new"}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := e.s.PruneAudit(bg, cutoff)
	if err != nil || n != pruneBatch+10 {
		t.Fatalf("pruned %d, %v", n, err)
	}
	kept, err := e.s.VerifyAudit(bg)
	if err != nil || kept != 6 { // five new events and the prune's own
		t.Fatalf("verify after pruning: %d %v", kept, err)
	}
	evs, _, _ := e.s.QueryAudit(bg, AuditFilter{Kind: "test.new"}, 10)
	first := evs[len(evs)-1]
	first.Detail = "altered"
	e.rawPut(t, bAudit, auditKey(first.Seq), mustJSON(t, first))
	if _, err := e.s.VerifyAudit(bg); !errors.Is(err, ErrAuditChain) {
		t.Errorf("an altered event after pruning: %v", err)
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// TestS4_BackupUnderLoad: backups taken while app passwords are created
// and used and events recorded each open clean (every page walked) and
// verify their audit chain.
func TestS4_BackupUnderLoad(t *testing.T) {
	e := newTestStore(t)
	e.addUser(t, "ann")
	_, secret := e.addAppPassword(t, "ann")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 3 {
		wg.Go(func() {
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				switch w {
				case 0:
					e.s.CreateAppPassword(bg, "ann", NewAppPassword{Name: "load"})
				case 1:
					e.login("ann", secret, IMAP, "192.0.2.1")
				default:
					e.s.Record(bg, Event{Kind: "test.load"})
				}
			}
		})
	}
	dir := t.TempDir()
	for i := range 2 {
		var buf bytes.Buffer
		if _, err := e.s.Backup(bg, &buf, "load"); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, fmt.Sprint(i, ".db"))
		os.WriteFile(path, buf.Bytes(), 0o600)
		st, err := Open(path, e.opts)
		if err != nil {
			t.Fatalf("backup %d under load does not open: %v", i, err)
		}
		if _, err := st.VerifyAudit(bg); err != nil {
			t.Errorf("backup %d under load: %v", i, err)
		}
		st.Close()
	}
	close(stop)
	wg.Wait()
}
