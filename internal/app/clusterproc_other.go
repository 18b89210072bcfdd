//go:build !linux

package app

import "syscall"

// childProcAttr puts a child in its own process group, so that a Ctrl-C
// in the terminal reaches authctl alone, which then stops the children in
// order. Outside Linux there is no parent-death signal: a child of an
// authctl that was killed must be stopped by hand.
func childProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
