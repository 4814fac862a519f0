package testpeer

import (
	"os/exec"
	"syscall"
)

// peerProcAttr makes the kernel stop a peer whose test binary died without
// running its cleanups (a timeout panic, a SIGKILL), so no server outlives
// its test.
func peerProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}

// peerGroupProcAttr is peerProcAttr for a peer whose daemons must be ended
// together: the peer leads a process group of its own (Postfix's master
// and the services it forks).
func peerGroupProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}

// signalGroup sends sig to the process group cmd leads.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error {
	return syscall.Kill(-cmd.Process.Pid, sig)
}
