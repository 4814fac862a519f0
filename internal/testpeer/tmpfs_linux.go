package testpeer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
)

// Tmpfs mounts a tmpfs of size bytes on dir, an empty directory; the
// mount goes when the test ends. A full disk is then a few writes away
// and leaves the rest of the machine alone. Mounting needs root: as any
// other user the test is skipped; as root a failed mount skips it too,
// unless POSTERN_REQUIRE_PEERS=1 demands it.
func Tmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mounting a small tmpfs to fill needs root")
	}
	err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, "size="+strconv.FormatInt(size, 10)+",mode=0755")
	if err != nil {
		msg := fmt.Sprintf("mount a tmpfs on %s: %v", dir, err)
		if os.Getenv(RequirePeersEnv) == "1" {
			t.Fatal(msg + " (" + RequirePeersEnv + "=1)")
		}
		t.Skip(msg)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
}

// FillDisk writes a file in dir until the file system is full and returns
// the number of bytes it took; removing the file frees them again.
func FillDisk(t testing.TB, dir string) (file string, n int64) {
	t.Helper()
	file = filepath.Join(dir, "filler")
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4096)
	for {
		w, err := f.Write(buf)
		n += int64(w)
		if errors.Is(err, syscall.ENOSPC) {
			return file, n
		}
		if err != nil {
			t.Fatalf("fill %s: %v", dir, err)
		}
	}
}
