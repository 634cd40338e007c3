package main

import (
	"net"
	"syscall"
)

// quickAck makes conn acknowledge what it receives at once. Cyrus does not
// set TCP_NODELAY on its sockets, and on loopback (64 KiB segments) Nagle's
// algorithm then holds the tail of a response written in several pieces,
// such as a FETCH of a body, until the client's delayed ACK comes, up to
// 40 ms later: a stall of the TCP stack, not work of the server. Linux
// leaves quick-ACK mode by itself, so it is re-armed after every read.
func quickAck(conn net.Conn) net.Conn {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return conn
	}
	raw, err := tc.SyscallConn()
	if err != nil {
		return conn
	}
	q := &quickAckConn{TCPConn: tc, raw: raw}
	q.arm()
	return q
}

type quickAckConn struct {
	*net.TCPConn
	raw syscall.RawConn
}

func (c *quickAckConn) Read(p []byte) (int, error) {
	n, err := c.TCPConn.Read(p)
	c.arm()
	return n, err
}

// arm sets TCP_QUICKACK; failing that only brings the stall back.
func (c *quickAckConn) arm() {
	_ = c.raw.Control(func(fd uintptr) {
		_ = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_TCP, syscall.TCP_QUICKACK, 1)
	})
}
