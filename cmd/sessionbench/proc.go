package main

import (
	"bufio"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// usage is what a server process (or a group of them) holds at a moment.
type usage struct {
	rss        float64 // bytes: PSS, summed over a Cyrus service's processes
	heap       float64 // bytes: Go heap in use (Rookery only)
	stack      float64 // bytes: goroutine stacks in use (Rookery only)
	goroutines float64
	procs      float64 // processes counted
}

func (u usage) minus(v usage) usage {
	return usage{rss: u.rss - v.rss, heap: u.heap - v.heap, stack: u.stack - v.stack,
		goroutines: u.goroutines - v.goroutines, procs: u.procs - v.procs}
}

func (u usage) plus(v usage) usage {
	return usage{rss: u.rss + v.rss, heap: u.heap + v.heap, stack: u.stack + v.stack,
		goroutines: u.goroutines + v.goroutines, procs: u.procs + v.procs}
}

// nodeUsage reads a node's memory (PSS, as for Cyrus's processes) from
// /proc and its Go figures from its /metrics.
func nodeUsage(p *process) (usage, error) {
	rss, err := procKB(filepath.Join("/proc", strconv.Itoa(p.cmd.Process.Pid), "smaps_rollup"), "Pss:")
	if err != nil {
		return usage{}, err
	}
	m, err := scrape(p.admin)
	if err != nil {
		return usage{}, err
	}
	return usage{rss: rss, heap: m["go_memstats_heap_inuse_bytes"], stack: m["go_memstats_stack_inuse_bytes"],
		goroutines: m["go_goroutines"], procs: 1}, nil
}

// procKB reads a "Name: N kB" line of a /proc file, in bytes.
func procKB(path, key string) (float64, error) {
	f, err := os.Open(path)
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), key); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 64)
			return kb * 1024, err
		}
	}
	return 0, fmt.Errorf("%s: no %s", path, key)
}

// scrape reads the unlabelled samples of a node's /metrics.
func scrape(addr string) (map[string]float64, error) {
	cl := http.Client{Timeout: 30 * time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, val, ok := strings.Cut(sc.Text(), " ")
		if !ok || strings.HasPrefix(name, "#") || strings.Contains(name, "{") {
			continue
		}
		if v, err := strconv.ParseFloat(val, 64); err == nil {
			out[name] = v
		}
	}
	return out, sc.Err()
}

// treeUsage sums the proportional set size (PSS: shared pages split
// among their users) of pid and every process below it: a forking
// server's memory, each child's private pages counted whole and the
// binary's shared pages once.
func treeUsage(pid int) (usage, error) {
	var u usage
	for _, p := range descendants(pid) {
		pss, err := procKB(filepath.Join("/proc", strconv.Itoa(p), "smaps_rollup"), "Pss:")
		if err != nil {
			continue // gone since
		}
		u.rss += pss
		u.procs++
	}
	if u.procs == 0 {
		return u, fmt.Errorf("sessionbench: no processes under %d", pid)
	}
	return u, nil
}

// descendants lists pid and the processes below it.
func descendants(pid int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The fields after the command name, which may hold spaces.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], p)
	}
	out := []int{pid}
	for i := 0; i < len(out); i++ {
		out = append(out, children[out[i]]...)
	}
	return out
}
