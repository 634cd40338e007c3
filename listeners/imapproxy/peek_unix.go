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

// awaitReadable blocks, holding no buffer, until conn has bytes to read,
// has been closed by its peer, or its read deadline passes; it returns
// at once for a connection it cannot wait on (see canAwait). Whatever
// ended the wait, the read that follows reports it, so errors are not
// returned.
func awaitReadable(conn net.Conn) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return
	}
	var buf [1]byte
	_ = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return !errors.Is(err, syscall.EAGAIN) && !errors.Is(err, syscall.EWOULDBLOCK)
	})
}

// canAwait reports whether awaitReadable can wait on conn: not on TLS,
// whose records the caller's reader must decode.
func canAwait(conn net.Conn) bool {
	_, ok := conn.(syscall.Conn)
	return ok
}
