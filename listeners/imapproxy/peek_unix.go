//go:build unix

package imapproxy

import (
	"errors"
	"net"
	"syscall"
)

// peekIdle reports whether conn has nothing to read and is not closed,
// without blocking: a non-blocking MSG_PEEK on the socket.
func peekIdle(conn net.Conn) bool {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	idle := true
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		idle = n <= 0 && err != nil && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EWOULDBLOCK))
		return true
	})
	return idle && err == nil
}
