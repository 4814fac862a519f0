//go:build !linux

package testpeer

import (
	"os/exec"
	"syscall"
)

func peerProcAttr() *syscall.SysProcAttr { return nil }

func peerGroupProcAttr() *syscall.SysProcAttr { return nil }

// signalGroup reaches only the leader where process groups are not known
// to this package.
func signalGroup(cmd *exec.Cmd, sig syscall.Signal) error { return cmd.Process.Signal(sig) }

// killTree ends cmd's process group with SIGKILL.
func killTree(cmd *exec.Cmd) error { return signalGroup(cmd, syscall.SIGKILL) }
