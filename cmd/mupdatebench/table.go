package main

import (
	"fmt"
	"io"
	"math"
	"strings"
	"time"
)

// row is one line of the table. For rates higher is better and the ratio
// is Rookery/Cyrus; for latencies lower is better and it is Cyrus/Rookery,
// so a ratio above 1 always means Rookery did better.
type row struct {
	metric         string
	rookery, cyrus float64
	latency        bool // values are milliseconds
}

func printTable(w io.Writer, rsz, csz sizes, r, c *results) {
	rows := []row{
		{metric: fmt.Sprintf("ACTIVATE serial, 1 conn, %d ops (ops/s)", rsz.Serial), rookery: r.Serial, cyrus: c.Serial},
		{metric: fmt.Sprintf("ACTIVATE pipelined, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, rsz.Pipelined), rookery: r.Pipelined, cyrus: c.Pipelined},
		{metric: fmt.Sprintf("ACTIVATE bulk load, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, r.LoadCount), rookery: r.Load, cyrus: c.Load},
		{metric: fmt.Sprintf("FIND serial, 1 conn, %d ops (ops/s)", rsz.Finds), rookery: r.Find, cyrus: c.Find},
		{metric: fmt.Sprintf("FIND pipelined, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, rsz.FindsPipelined), rookery: r.FindPipelined, cyrus: c.FindPipelined},
		{metric: fmt.Sprintf("UPDATE dump, %d entries, best of %d (entries/s)", r.DumpEntries, rsz.Dumps), rookery: r.Dump, cyrus: c.Dump},
	}
	for _, p := range []struct {
		name string
		q    float64
	}{{"p50", 0.50}, {"p99", 0.99}, {"max", 1}} {
		rows = append(rows, row{
			metric:  fmt.Sprintf("propagation %s, %d/%d samples (ms)", p.name, len(r.Propagation), len(c.Propagation)),
			rookery: ms(percentile(r.Propagation, p.q)),
			cyrus:   ms(percentile(c.Propagation, p.q)),
			latency: true,
		})
	}

	head := []string{"metric", "Rookery", "Cyrus", "ratio"}
	cells := [][]string{head}
	for _, x := range rows {
		ratio := x.rookery / x.cyrus
		if x.latency {
			ratio = x.cyrus / x.rookery
		}
		cells = append(cells, []string{x.metric, number(x.rookery, x.latency), number(x.cyrus, x.latency), fmt.Sprintf("%.2fx", ratio)})
	}
	width := make([]int, len(head))
	for _, line := range cells {
		for i, s := range line {
			width[i] = max(width[i], len(s))
		}
	}
	for n, line := range cells {
		fmt.Fprintf(w, "%-*s | %*s | %*s | %*s\n", width[0], line[0], width[1], line[1], width[2], line[2], width[3], line[3])
		if n == 0 {
			fmt.Fprintf(w, "%s-|-%s-|-%s-|-%s\n", strings.Repeat("-", width[0]), strings.Repeat("-", width[1]), strings.Repeat("-", width[2]), strings.Repeat("-", width[3]))
		}
	}
	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for latencies; above 1 means Rookery is faster.")
	fmt.Fprintln(w, "propagation: from sending ACTIVATE on one connection until its MAILBOX line arrives on another connection's UPDATE stream.")
}

// percentile is the nearest-rank q-quantile of sorted ds (q=1: the maximum).
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(sorted)))) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func number(v float64, latency bool) string {
	if latency {
		return fmt.Sprintf("%.3f", v)
	}
	return fmt.Sprintf("%.0f", v)
}
