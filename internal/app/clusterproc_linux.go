package app

import "syscall"

// childProcAttr puts a child in its own process group, so that a Ctrl-C
// in the terminal reaches authctl alone, which then stops the children in
// order (front-ends and consumers, then the commands, then NATS); and asks
// Linux to send it SIGTERM if authctl dies without stopping it (killed,
// crashed, a test binary past its timeout), so that no child outlives it.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGTERM}
}
