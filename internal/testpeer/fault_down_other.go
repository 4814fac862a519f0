//go:build !unix

package testpeer

import (
	"fmt"
	"net"
)

// reserveRefusingAddr returns a loopback port that was free a moment ago.
func reserveRefusingAddr() (addr string, release func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, fmt.Errorf("listen: %w", err)
	}
	addr = ln.Addr().String()
	if err := ln.Close(); err != nil {
		return "", nil, fmt.Errorf("close: %w", err)
	}
	return addr, func() {}, nil
}
