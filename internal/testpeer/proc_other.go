//go:build !linux

package testpeer

import "syscall"

func peerProcAttr() *syscall.SysProcAttr { return nil }
