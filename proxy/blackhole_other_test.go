//go:build !linux

package proxy

import "testing"

func blackholeAddr(t *testing.T) string {
	t.Skip("needs Linux to drop SYNs on loopback")
	return ""
}
