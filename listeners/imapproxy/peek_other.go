//go:build !unix

package imapproxy

import "net"

// peekIdle cannot look at the socket here; a dead connection is found by
// the next command instead.
func peekIdle(net.Conn) bool { return true }

// awaitReadable cannot wait on a socket here: readers keep their buffer.
func awaitReadable(net.Conn) {}

func canAwait(net.Conn) bool { return false }
