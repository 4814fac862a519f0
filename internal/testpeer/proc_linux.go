package testpeer

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
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

// killTree ends cmd's process group and the children its leader forked,
// with SIGKILL. sogod's workers each start a session of their own, so a
// signal to the leader's group misses them, and a worker holding a Ping
// sleeps until the Ping's heartbeat has passed.
func killTree(cmd *exec.Cmd) error {
	kids := childPIDs(cmd.Process.Pid)
	err := signalGroup(cmd, syscall.SIGKILL)
	for _, pid := range kids {
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
	return err
}

// childPIDs lists the children of pid's threads.
func childPIDs(pid int) []int {
	files, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/children", pid))
	var out []int
	for _, f := range files {
		data, _ := os.ReadFile(f)
		for _, field := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(field); err == nil {
				out = append(out, n)
			}
		}
	}
	return out
}
