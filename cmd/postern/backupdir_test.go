package main

import (
	"bytes"
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/postern-dev/postern/agefile"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// TestScheduledBackups: each scheduled backup is an age file for the
// configured recipients, named with their fingerprint; beyond keep the
// oldest go, while one made for other recipients stays until rotate; the
// metrics follow; a backup that cannot be written is logged and counted,
// and the next one works again.
func TestScheduledBackups(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	cfg, err := config.Read(h.conf)
	if err != nil {
		t.Fatal(err)
	}
	st, err := openStore(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	id, _ := age.GenerateX25519Identity()
	dir := filepath.Join(h.dir, "backups")
	os.MkdirAll(dir, 0o700)
	other := filepath.Join(dir, backupName(mustTime(t, "2020-01-01T00:00:00Z"), "0123456789ab"))
	os.WriteFile(other, []byte("made for other recipients"), 0o600)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	b := &backupSchedule{cfg: config.Backup{Dir: dir, Keep: 2, Recipients: []string{id.Recipient().String()}},
		store: st, log: slog.New(slog.NewTextHandler(&logs, nil)), metrics: newBackupMetrics(reg)}
	fp := agefile.Fingerprint(b.cfg.Recipients)
	for range 3 { // within one second, as at a start right after a rotate
		b.once(context.Background())
	}
	all, _ := listBackups(dir)
	var mine int
	for _, d := range all {
		if d.fingerprint == fp {
			mine++
			data, _ := os.ReadFile(d.path)
			if _, err := agefile.Decrypt(bytes.NewReader(data), agefile.Key{Identities: []byte(id.String())}); err != nil {
				t.Errorf("%s does not open with the recipient's identity: %v", d.path, err)
			}
		}
	}
	if mine != 2 || len(all) != 3 {
		t.Errorf("after 3 backups with keep = 2: %d for the recipients, %d in all", mine, len(all))
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("the backup made for other recipients was pruned: %v", err)
	}
	if testutil.ToFloat64(b.metrics.lastTime) == 0 || testutil.ToFloat64(b.metrics.lastSize) == 0 || testutil.ToFloat64(b.metrics.failures) != 0 {
		t.Errorf("metrics after good backups: time %v size %v failures %v", testutil.ToFloat64(b.metrics.lastTime),
			testutil.ToFloat64(b.metrics.lastSize), testutil.ToFloat64(b.metrics.failures))
	}

	os.RemoveAll(dir)
	b.once(context.Background())
	if testutil.ToFloat64(b.metrics.failures) != 1 || !strings.Contains(logs.String(), "scheduled backup failed; serving goes on") {
		t.Errorf("a failed backup: failures %v, log:\n%s", testutil.ToFloat64(b.metrics.failures), logs.String())
	}
	os.MkdirAll(dir, 0o700)
	b.once(context.Background())
	if all, _ := listBackups(dir); len(all) != 1 || testutil.ToFloat64(b.metrics.failures) != 1 {
		t.Errorf("the backup after a failure: %d files, failures %v", len(all), testutil.ToFloat64(b.metrics.failures))
	}
}

// TestRotateDeletesBackupsForOtherRecipients: rotate writes a fresh backup
// for the configured recipients and deletes those made for others only
// when told to.
func TestRotateDeletesBackupsForOtherRecipients(t *testing.T) {
	h := newHarness(t)
	id, _ := age.GenerateX25519Identity()
	dir := filepath.Join(h.dir, "backups")
	os.WriteFile(h.conf, append(mustRead(t, h.conf), []byte("[backup]\ndir = \""+dir+"\"\nrecipients = [\""+id.Recipient().String()+"\"]\n")...), 0o600)
	h.mustRun("", "init")
	os.MkdirAll(dir, 0o700)
	old := filepath.Join(dir, backupName(mustTime(t, "2020-01-01T00:00:00Z"), "0123456789ab"))
	os.WriteFile(old, []byte("x"), 0o600)
	code, out, errs := h.run("", "store", "rotate")
	if code != 1 || !strings.Contains(out, "1 backup(s)") || !strings.Contains(errs, "--yes") {
		t.Fatalf("rotate without --yes: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(old); err != nil {
		t.Fatal("rotate deleted without being told to")
	}
	out = h.mustRun("", "store", "rotate", "--yes") // within the same second, as an operator may
	if _, err := os.Stat(old); err == nil || !strings.Contains(out, "deleted 1 backup(s)") {
		t.Errorf("rotate --yes: %q", out)
	}
	if all, _ := listBackups(dir); len(all) != 2 {
		t.Errorf("fresh backups: %d", len(all))
	}
}

// TestKeyExportImportAndAuditExport: the exported key file is an age file
// that imports back to the same keys (and never over an existing key
// file); audit export writes one JSON event per line.
func TestKeyExportImportAndAuditExport(t *testing.T) {
	h := newHarness(t)
	h.mustRun("", "init")
	pass := filepath.Join(h.dir, "pass")
	os.WriteFile(pass, []byte("an export passphrase\n"), 0o600)
	out := filepath.Join(h.dir, "key.age")
	h.mustRun("", "key", "export", "--out", out, "--passphrase-file", pass)
	keyPath := filepath.Join(h.dir, "keys", "postern.key")
	want := mustRead(t, keyPath)
	if bytes.Contains(mustRead(t, out), want[:40]) {
		t.Error("the exported key file is readable without its passphrase")
	}
	if code, _, errs := h.run("", "key", "import", "--in", out, "--passphrase-file", pass); code == 0 || !strings.Contains(errs, "exists") {
		t.Errorf("import over an existing key file: %d %q", code, errs)
	}
	os.Remove(keyPath)
	h.mustRun("", "key", "import", "--in", out, "--passphrase-file", pass)
	if got := mustRead(t, keyPath); !bytes.Equal(got, want) {
		t.Error("the imported key file differs")
	}
	if _, err := authstore.LoadKeyFile(keyPath); err != nil {
		t.Errorf("imported key file: %v", err)
	}
	lines := strings.Split(strings.TrimSpace(h.mustRun("", "audit", "export", "--since", "1d")), "\n")
	if len(lines) < 1 || !strings.HasPrefix(lines[0], `{"seq":1,`) {
		t.Errorf("audit export: %q", lines)
	}
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func mustTime(t *testing.T, s string) time.Time {
	t.Helper()
	tm, err := time.Parse(time.RFC3339, s)
	if err != nil {
		t.Fatal(err)
	}
	return tm
}
