package certs

import (
	"context"
	"os"
	"syscall"
	"testing"
	"time"
)

func TestWatchReloadsChangedFiles(t *testing.T) {
	tests := []struct {
		name  string
		write func(t *testing.T, p Pair) // replaces p's files with a renewal
	}{
		{"rewritten in place", func(t *testing.T, p Pair) {
			rewritePair(t, p, "a.example.test", "renewed.example.test")
		}},
		{"replaced by rename", func(t *testing.T, p Pair) {
			staged, _ := writePair(t, t.TempDir(), "staged", "a.example.test", "renewed.example.test")
			mustRename(t, staged.KeyFile, p.KeyFile)
			mustRename(t, staged.CertFile, p.CertFile)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			p, old := writePair(t, dir, "a", "a.example.test")
			m := newManager(t, Options{Pairs: []Pair{p}, ReloadInterval: 5 * time.Millisecond})
			addr := serve(t, m)
			startWatch(t, m.Watch)

			tt.write(t, p)
			waitFor(t, "the renewed certificate", func() bool {
				return !currentLeaf(t, m, "a.example.test").Equal(old)
			})
			got := servedLeaf(t, addr, "renewed.example.test")
			if len(got.DNSNames) != 2 || got.DNSNames[1] != "renewed.example.test" {
				t.Fatalf("served %v after the change, want the renewal", got.DNSNames)
			}
		})
	}
}

// A renewal written in two steps first leaves a broken pair behind: Watch
// must keep serving the old certificate and pick up the pair once complete.
func TestWatchKeepsOldCertificateUntilPairIsComplete(t *testing.T) {
	dir := t.TempDir()
	p, old := writePair(t, dir, "a", "a.example.test")
	var rec logRecorder
	m := newManager(t, Options{Pairs: []Pair{p}, ReloadInterval: 5 * time.Millisecond, Logger: rec.logger()})
	addr := serve(t, m)
	startWatch(t, m.Watch)

	certPEM, keyPEM := genPEM(t, time.Now().Add(24*time.Hour), "a.example.test", "renewed.example.test")
	writeFile(t, p.CertFile, certPEM) // new certificate, old key: a mismatch
	waitFor(t, "a failed reload", func() bool {
		return rec.count("certificate reload failed; keeping the previous certificates") > 0
	})
	if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(old) {
		t.Fatal("a half-written renewal replaced the working certificate")
	}

	// The key has the same size as the old one and timestamps can be coarser
	// than this test is fast, so replace it by rename to give it a new identity.
	staged := p.KeyFile + ".new"
	writeFile(t, staged, keyPEM)
	mustRename(t, staged, p.KeyFile)
	renewed := parseLeaf(t, certPEM)
	waitFor(t, "the completed renewal", func() bool {
		return currentLeaf(t, m, "a.example.test").Equal(renewed)
	})
	if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(renewed) {
		t.Fatal("the completed renewal is not served")
	}
}

func TestWatchReloadsOnSignal(t *testing.T) {
	dir := t.TempDir()
	p, old := writePair(t, dir, "a", "a.example.test")
	var rec logRecorder
	// An hour-long interval: only the signal can cause the reload.
	m := newManager(t, Options{Pairs: []Pair{p}, ReloadInterval: time.Hour, Logger: rec.logger()})
	hup := make(chan os.Signal)
	startWatch(t, func(ctx context.Context) { m.watch(ctx, hup) })

	tests := []struct {
		name     string
		change   bool
		reloaded int // "certificates reloaded" messages expected so far
	}{
		// A signal reloads even when nothing looks changed, e.g. after a
		// copy that preserved mtimes.
		{"unchanged files", false, 1},
		{"changed files", true, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want := old
			if tt.change {
				want = rewritePair(t, p, "a.example.test", "renewed.example.test")
			}
			hup <- syscall.SIGHUP // unbuffered: returns once watch took it
			waitFor(t, "the reload after SIGHUP", func() bool {
				return rec.count("certificates reloaded") == tt.reloaded
			})
			if got := currentLeaf(t, m, "a.example.test"); !got.Equal(want) {
				t.Fatalf("after SIGHUP serving %v, want %v", got.DNSNames, want.DNSNames)
			}
		})
	}
}

func mustRename(t *testing.T, from, to string) {
	t.Helper()
	if err := os.Rename(from, to); err != nil {
		t.Fatal(err)
	}
}
