//go:build unix && !linux

package imaptest

import "syscall"

// procAttr puts imaptest in its own process group, so that the whole group
// can be killed.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
