package imaptest

import "syscall"

// procAttr puts imaptest in its own process group, so that the whole group
// can be killed, and has the kernel kill it if the test process dies
// first (a test binary killed at go test's -timeout runs no cleanup).
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
