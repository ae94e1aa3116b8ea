package main

import "syscall"

// setDeathSignal makes Linux stop the child if the gateway dies without cleaning up (kill
// -9), so no orphan keeps holding its port.
func setDeathSignal(a *syscall.SysProcAttr) {
	a.Pdeathsig = syscall.SIGTERM
}
