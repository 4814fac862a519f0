package testpeer

import "syscall"

// peerProcAttr makes the kernel stop a peer whose test binary died without
// running its cleanups (a timeout panic, a SIGKILL), so no server outlives
// its test.
func peerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
