// Package benchutil holds what the side-by-side benchmark commands
// (Rookery against real Cyrus on the same machine) share: the facts about
// the machine that head their output, free ports, percentiles, and the
// table of both sides' figures with their ratio.
package benchutil

import (
	"fmt"
	"net"
	"os"
	"runtime"
	"strings"
)

// Machine is the header line that says on what the figures were made:
// CPU, nproc, Go version and platform, and the one-minute load average
// before (as LoadAvg returned it when the run began) and now.
func Machine(loadBefore string) string {
	return fmt.Sprintf("machine: %s, %d CPUs (nproc), %s %s/%s, load average %s before, %s after",
		cpuModel(), runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH, loadBefore, LoadAvg())
}

// LoadAvg is the one-minute load average: other work on the machine skews
// every figure, and the output should show it.
func LoadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if f := strings.Fields(string(b)); err == nil && len(f) > 0 {
		return f[0]
	}
	return "unknown"
}

// FSType is the file system type of the mount holding path, from
// /proc/self/mounts: the servers under test sync their writes, so it
// matters.
func FSType(path string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return "unknown file system"
	}
	best, typ := "", "unknown file system"
	for line := range strings.Lines(string(b)) {
		f := strings.Fields(line)
		if len(f) < 3 {
			continue
		}
		mnt := f[1]
		under := path == mnt || strings.HasPrefix(path, strings.TrimSuffix(mnt, "/")+"/")
		if under && len(mnt) >= len(best) {
			best, typ = mnt, f[2]
		}
	}
	return typ
}

// FreePort returns a loopback port that was free a moment ago; the Cyrus
// harness refuses it clearly if someone took it since.
func FreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("benchutil: free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// cpuModel is the first "model name" of /proc/cpuinfo, or "unknown CPU".
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "unknown CPU"
	}
	for line := range strings.Lines(string(b)) {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return "unknown CPU"
}
