//go:build unix

package node

import (
	"fmt"

	"golang.org/x/sys/unix"
)

// diskSpace reports the bytes free (to unprivileged users) and in all on
// the file system holding dir.
func diskSpace(dir string) func() (avail, total uint64, err error) {
	return func() (uint64, uint64, error) {
		var st unix.Statfs_t
		if err := unix.Statfs(dir, &st); err != nil {
			return 0, 0, fmt.Errorf("node: statfs %s: %w", dir, err)
		}
		return st.Bavail * uint64(st.Bsize), st.Blocks * uint64(st.Bsize), nil
	}
}
