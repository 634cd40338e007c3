//go:build unix

package node

import "syscall"

// checkFileLimit logs the descriptor limit the node runs with, and warns
// when the connection caps allow more connections than it has descriptors
// for: past the limit, accepts and backend dials fail with EMFILE instead
// of the cap's clear BYE. Go already raised the soft limit to the hard one
// when the process started (since Go 1.19), so there is nothing left to
// raise without privilege; the hard limit is the operator's (ulimit -Hn,
// LimitNOFILE= in a systemd unit).
func (n *Node) checkFileLimit() {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		n.log.Warn("node: cannot read the file descriptor limit", "err", err)
		return
	}
	need := n.cfg.descriptorsNeeded()
	if lim.Cur < uint64(need) {
		n.log.Warn("node: file descriptor limit below what the connection caps need; raise the hard limit or lower imap_connections_max",
			"limit", lim.Cur, "need", need, "imap_connections_max", n.cfg.imapConnectionsMax())
		return
	}
	n.log.Info("node: file descriptor limit", "limit", lim.Cur, "need", need)
}
