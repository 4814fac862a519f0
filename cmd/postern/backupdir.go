package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/agefile"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/config"
)

// Scheduled backups are named postern-<UTC time>-<recipients'
// fingerprint>.age, so that their age and the recipients they were made
// for are known without opening them (an age header does not name its
// recipients).
const backupTimeLayout = "20060102T150405Z"

func backupName(t time.Time, fingerprint string) string {
	return "postern-" + t.UTC().Format(backupTimeLayout) + "-" + fingerprint + ".age"
}

// newBackupPath names a backup made now in dir, a second later per
// backup already there under the name: names are by the second, and two
// backups within one (a rotate right after a start) must both be kept.
func newBackupPath(dir, fingerprint string) string {
	t := time.Now()
	for {
		p := filepath.Join(dir, backupName(t, fingerprint))
		if _, err := os.Lstat(p); errors.Is(err, os.ErrNotExist) {
			return p
		}
		t = t.Add(time.Second)
	}
}

// dirBackup is one scheduled backup found in the directory.
type dirBackup struct {
	path        string
	time        time.Time
	fingerprint string
}

// listBackups returns the scheduled backups in dir, oldest first; other
// files are left alone.
func listBackups(dir string) ([]dirBackup, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var out []dirBackup
	for _, e := range entries {
		rest, ok := strings.CutPrefix(e.Name(), "postern-")
		rest, ok2 := strings.CutSuffix(rest, ".age")
		stamp, fp, ok3 := strings.Cut(rest, "-")
		if !ok || !ok2 || !ok3 || !e.Type().IsRegular() {
			continue
		}
		t, err := time.Parse(backupTimeLayout, stamp)
		if err != nil {
			continue
		}
		out = append(out, dirBackup{path: filepath.Join(dir, e.Name()), time: t, fingerprint: fp})
	}
	slices.SortFunc(out, func(a, b dirBackup) int { return a.time.Compare(b.time) })
	return out, nil
}

// pruneBackups deletes the oldest backups made for fingerprint beyond
// keep, and returns their paths. Those made for other recipients are kept:
// `postern store rotate` deletes them after asking.
func pruneBackups(dir, fingerprint string, keep int) ([]string, error) {
	all, err := listBackups(dir)
	if err != nil {
		return nil, err
	}
	var mine []dirBackup
	for _, b := range all {
		if b.fingerprint == fingerprint {
			mine = append(mine, b)
		}
	}
	var gone []string
	for len(mine) > keep {
		if err := os.Remove(mine[0].path); err != nil {
			return gone, err
		}
		gone, mine = append(gone, mine[0].path), mine[1:]
	}
	return gone, nil
}

// backupMetrics are what an operator alerts on: the age and size of the
// last good backup, and failures.
type backupMetrics struct {
	lastTime prometheus.Gauge
	lastSize prometheus.Gauge
	failures prometheus.Counter
}

func newBackupMetrics(reg prometheus.Registerer) *backupMetrics {
	m := &backupMetrics{
		lastTime: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postern_backup_last_success_timestamp_seconds",
			Help: "Unix time of the last scheduled backup written in full (0: none since start)."}),
		lastSize: prometheus.NewGauge(prometheus.GaugeOpts{Name: "postern_backup_last_size_bytes",
			Help: "Size of the last scheduled backup written in full, encrypted."}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{Name: "postern_backup_failures_total",
			Help: "Scheduled backups that failed since start."}),
	}
	reg.MustRegister(m.lastTime, m.lastSize, m.failures)
	return m
}

// backupSchedule writes a backup every cfg.Every into cfg.Dir, to the
// configured recipients only. A failure is logged and counted; serving
// goes on.
type backupSchedule struct {
	cfg     config.Backup
	store   *authstore.Store
	log     *slog.Logger
	metrics *backupMetrics
}

func (b *backupSchedule) lock() agefile.Lock { return agefile.Lock{Recipients: b.cfg.Recipients} }

// run waits for the first backup due (one period after the newest for the
// current recipients; at once when there is none, as after a change of
// recipients), then writes one every period until ctx ends.
func (b *backupSchedule) run(ctx context.Context) {
	next := time.Now()
	fp := agefile.Fingerprint(b.cfg.Recipients)
	if all, err := listBackups(b.cfg.Dir); err == nil {
		others := 0
		for _, d := range all {
			if d.fingerprint == fp {
				next = d.time.Add(b.cfg.Every.Duration)
			} else {
				others++
			}
		}
		if others > 0 {
			b.log.Warn("scheduled backups made for other recipients are still there; `postern store rotate` replaces them",
				"dir", b.cfg.Dir, "backups", others)
		}
	}
	for {
		t := time.NewTimer(time.Until(next))
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		b.once(ctx)
		next = time.Now().Add(b.cfg.Every.Duration)
	}
}

// once writes one backup and prunes the old ones.
func (b *backupSchedule) once(ctx context.Context) {
	fp := agefile.Fingerprint(b.cfg.Recipients)
	path := newBackupPath(b.cfg.Dir, fp)
	var info authstore.BackupInfo
	var size int64
	err := agefile.WriteNew(path, func(w io.Writer) error {
		cw := &countWriter{w: w}
		var err error
		info, err = directBackup(authstore.WithActor(ctx, authstore.Actor{Name: "scheduler"}), b.store, cw, b.lock())
		size = cw.n
		return err
	})
	if err != nil {
		b.metrics.failures.Inc()
		b.log.Error("scheduled backup failed; serving goes on", "dir", b.cfg.Dir, "err", err)
		return
	}
	b.metrics.lastTime.Set(float64(time.Now().Unix()))
	b.metrics.lastSize.Set(float64(size))
	b.log.Info("scheduled backup written", "file", path, "bytes", size, "audit_seq", info.Seq)
	gone, err := pruneBackups(b.cfg.Dir, fp, b.cfg.Keep)
	if err != nil {
		b.log.Error("pruning old backups failed", "dir", b.cfg.Dir, "err", err)
	}
	if len(gone) > 0 {
		b.log.Info("old scheduled backups deleted", "files", len(gone), "keep", b.cfg.Keep)
	}
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// auditPruneEvery is how often old audit events are pruned.
const auditPruneEvery = 24 * time.Hour

// pruneAuditLoop deletes audit events older than keep at start and then
// once a day; a failure is logged and tried again the next day.
func pruneAuditLoop(ctx context.Context, st *authstore.Store, keep time.Duration, log *slog.Logger) {
	for {
		n, err := st.PruneAudit(authstore.WithActor(ctx, authstore.Actor{Name: "retention"}), time.Now().Add(-keep))
		switch {
		case err != nil && !errors.Is(err, context.Canceled):
			log.Error("pruning the audit log failed", "err", err)
		case n > 0:
			log.Info("audit events past retention pruned", "events", n, "keep", config.Duration{Duration: keep}.String())
		}
		t := time.NewTimer(auditPruneEvery)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
}

// startMaintenance runs the scheduled backups (when [backup] dir is set)
// and the audit retention, both owned by g.wg and ended by ctx.
func (g *gateway) startMaintenance(ctx context.Context, cfg *config.Config, reg prometheus.Registerer) error {
	m := newBackupMetrics(reg)
	if cfg.Backup.Dir != "" {
		b := &backupSchedule{cfg: cfg.Backup, store: g.store, log: g.log, metrics: m}
		if err := b.lock().Check(); err != nil {
			return fmt.Errorf("backup.recipients: %w", err)
		}
		if err := os.MkdirAll(cfg.Backup.Dir, 0o700); err != nil {
			return fmt.Errorf("backup.dir: %w", err)
		}
		g.wg.Go(func() { b.run(ctx) })
	}
	if cfg.Audit.Keep.Duration > 0 { // zero in a Config built without defaults: keep everything
		g.wg.Go(func() { pruneAuditLoop(ctx, g.store, cfg.Audit.Keep.Duration, g.log) })
	}
	return nil
}
