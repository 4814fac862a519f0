//go:build !linux

package testpeer

import "testing"

// Tmpfs skips: a file system to fill is mounted on Linux only.
func Tmpfs(t testing.TB, dir string, size int64) {
	t.Helper()
	t.Skip("a tmpfs to fill needs Linux")
}

// FillDisk is never reached off Linux: Tmpfs skipped the test.
func FillDisk(t testing.TB, dir string) (string, int64) {
	t.Helper()
	t.Skip("a tmpfs to fill needs Linux")
	return "", 0
}
