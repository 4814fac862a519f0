package certs

import (
	"context"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"time"
)

// Watch polls the pair files every ReloadInterval and reloads when any of
// them changed; it also reloads on SIGHUP. It returns when ctx ends. A failed
// reload is logged and retried only once the files change again (or on the
// next SIGHUP), so a half-written renewal does not flood the log.
func (m *Manager) Watch(ctx context.Context) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	m.watch(ctx, hup)
}

func (m *Manager) watch(ctx context.Context, hup <-chan os.Signal) {
	ticker := time.NewTicker(m.interval)
	defer ticker.Stop()
	seen := m.current.Load().stamps
	for {
		select {
		case <-ctx.Done():
			return
		case <-hup:
			seen = statPairs(m.pairs)
			m.reloadAndLog("signal")
		case <-ticker.C:
			now := statPairs(m.pairs)
			if slices.EqualFunc(now, seen, fileStamp.same) {
				continue
			}
			seen = now
			m.reloadAndLog("files changed")
		}
	}
}

func (m *Manager) reloadAndLog(reason string) {
	if err := m.reload(); err != nil {
		m.log.Error("certificate reload failed; keeping the previous certificates",
			"reason", reason, "err", err)
	}
}

// fileStamp is what Watch compares between polls. Identity catches a file
// replaced by rename (including symlink swaps, since Stat follows links)
// even when mtime and size happen to match.
type fileStamp struct {
	info os.FileInfo // nil when the file could not be stat'ed
}

func statPairs(pairs []Pair) []fileStamp {
	stamps := make([]fileStamp, 0, 2*len(pairs))
	for _, p := range pairs {
		stamps = append(stamps, statFile(p.CertFile), statFile(p.KeyFile))
	}
	return stamps
}

func statFile(path string) fileStamp {
	info, err := os.Stat(path)
	if err != nil {
		return fileStamp{}
	}
	return fileStamp{info: info}
}

func (a fileStamp) same(b fileStamp) bool {
	if a.info == nil || b.info == nil {
		return a.info == nil && b.info == nil
	}
	return os.SameFile(a.info, b.info) &&
		a.info.Size() == b.info.Size() &&
		a.info.ModTime().Equal(b.info.ModTime())
}
