//go:build unix

package main

import (
	"os"
	"os/exec"
	"syscall"
)

// setProcAttrs puts the child in its own process group, so that the gateway decides when
// it stops (a terminal's Ctrl-C reaches the gateway, which forwards SIGTERM) and the
// signal reaches whatever the child started too.
func setProcAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	setDeathSignal(cmd.SysProcAttr)
}

// terminate asks the child's process group to stop.
func terminate(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGTERM)
}

// kill stops the child's process group at once.
func kill(p *os.Process) error {
	return syscall.Kill(-p.Pid, syscall.SIGKILL)
}
