//go:build !linux

package main

import "net"

// quickAck is a no-op where TCP_QUICKACK does not exist; Cyrus, the reason
// for it, runs on Linux only here.
func quickAck(conn net.Conn) net.Conn { return conn }
