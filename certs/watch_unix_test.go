//go:build unix

package certs

import (
	"os"
	"os/signal"
	"syscall"
	"testing"
	"time"
)

// TestWatchSIGHUP sends a real SIGHUP to the test process.
func TestWatchSIGHUP(t *testing.T) {
	// Catch SIGHUP ourselves first: until Watch has called signal.Notify,
	// the default action would end the test binary.
	guard := make(chan os.Signal, 1)
	signal.Notify(guard, syscall.SIGHUP)
	defer signal.Stop(guard)

	dir := t.TempDir()
	p, old := writePair(t, dir, "a", "a.example.test")
	m := newManager(t, Options{Pairs: []Pair{p}, ReloadInterval: time.Hour})
	addr := serve(t, m)
	startWatch(t, m.Watch)

	certPEM, keyPEM := genPEM(t, time.Now().Add(24*time.Hour), "a.example.test")
	renewed := parseLeaf(t, certPEM)
	writeFile(t, p.KeyFile, keyPEM)
	writeFile(t, p.CertFile, certPEM)
	if currentLeaf(t, m, "a.example.test").Equal(renewed) || !currentLeaf(t, m, "").Equal(old) {
		t.Fatal("reloaded before any signal")
	}
	// Signal until Watch answers: the first ones may arrive before its Notify.
	waitFor(t, "the reload after SIGHUP", func() bool {
		if err := syscall.Kill(os.Getpid(), syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		return currentLeaf(t, m, "a.example.test").Equal(renewed)
	})
	if got := servedLeaf(t, addr, "a.example.test"); !got.Equal(renewed) {
		t.Fatal("the reloaded certificate is not served")
	}
}
