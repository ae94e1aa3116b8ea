//go:build !unix

package main

import (
	"os"
	"os/exec"
)

// setProcAttrs does nothing where there are no process groups.
func setProcAttrs(*exec.Cmd) {}

// terminate asks the child to stop, or kills it where it cannot be asked.
func terminate(p *os.Process) error {
	if err := p.Signal(os.Interrupt); err != nil {
		return p.Kill()
	}
	return nil
}

// kill stops the child at once.
func kill(p *os.Process) error { return p.Kill() }
