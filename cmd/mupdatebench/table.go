package main

import (
	"fmt"
	"io"

	"github.com/rookery/rookery/internal/benchutil"
)

func printTable(w io.Writer, rsz, csz sizes, r, c *results) {
	rows := []benchutil.Row{
		{Metric: fmt.Sprintf("ACTIVATE serial, 1 conn, %d ops (ops/s)", rsz.Serial), Rookery: r.Serial, Cyrus: c.Serial},
		{Metric: fmt.Sprintf("ACTIVATE pipelined, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, rsz.Pipelined), Rookery: r.Pipelined, Cyrus: c.Pipelined},
		{Metric: fmt.Sprintf("ACTIVATE bulk load, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, r.LoadCount), Rookery: r.Load, Cyrus: c.Load},
		{Metric: fmt.Sprintf("FIND serial, 1 conn, %d ops (ops/s)", rsz.Finds), Rookery: r.Find, Cyrus: c.Find},
		{Metric: fmt.Sprintf("FIND pipelined, %dx%d, %d ops (ops/s)", rsz.Conns, rsz.Window, rsz.FindsPipelined), Rookery: r.FindPipelined, Cyrus: c.FindPipelined},
		{Metric: fmt.Sprintf("UPDATE dump, %d entries, best of %d (entries/s)", r.DumpEntries, rsz.Dumps), Rookery: r.Dump, Cyrus: c.Dump},
	}
	rows = append(rows, benchutil.PercentileRows(func(q string) string {
		return fmt.Sprintf("propagation %s, %d/%d samples (ms)", q, len(r.Propagation), len(c.Propagation))
	}, r.Propagation, c.Propagation)...)
	benchutil.WriteTable(w, rows)
	fmt.Fprintln(w, "\nratio: Rookery/Cyrus for rates, Cyrus/Rookery for latencies; above 1 means Rookery is faster.")
	fmt.Fprintln(w, "propagation: from sending ACTIVATE on one connection until its MAILBOX line arrives on another connection's UPDATE stream.")
}
