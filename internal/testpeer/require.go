package testpeer

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// RequirePeersEnv names the environment variable that turns a missing peer
// binary from a skip into a failure, so CI cannot pass by skipping.
const RequirePeersEnv = "POSTERN_REQUIRE_PEERS"

// RequirePeer returns the path of the named server binary. When it is not
// installed the test is skipped, or fails if POSTERN_REQUIRE_PEERS=1.
func RequirePeer(t testing.TB, binary string) string {
	t.Helper()
	if path, ok := lookPeer(binary); ok {
		return path
	}
	requireOrSkip(t, binary+" not installed; run scripts/install-peers")
	return ""
}

// requireOrSkip skips t for want of a peer, or fails it if
// POSTERN_REQUIRE_PEERS=1.
func requireOrSkip(t testing.TB, msg string) {
	t.Helper()
	if os.Getenv(RequirePeersEnv) == "1" {
		t.Fatal(msg + " (" + RequirePeersEnv + "=1)")
	} else {
		t.Skip(msg)
	}
}

func lookPeer(binary string) (string, bool) {
	if path, err := exec.LookPath(binary); err == nil {
		return path, true
	}
	// Daemons live in sbin, which an unprivileged user's PATH often lacks.
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin", "/sbin"} {
		path := filepath.Join(dir, binary)
		if fi, err := os.Stat(path); err == nil && fi.Mode().IsRegular() && fi.Mode().Perm()&0o111 != 0 {
			return path, true
		}
	}
	return "", false
}
