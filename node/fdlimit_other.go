//go:build !unix

package node

// checkFileLimit has no descriptor limit to check outside Unix.
func (n *Node) checkFileLimit() {}
