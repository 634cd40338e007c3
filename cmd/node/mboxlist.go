package main

import (
	"fmt"
	"io"

	"github.com/rookery/rookery/listeners/admin"
)

// mboxlist is "node mboxlist [-w]": a running backend compares its
// mailboxes with the master's list and, without -w, makes the master
// match them, as Cyrus's ctl_mboxlist -m (-mw only reports). It exits 1
// when -w found differences, so a check can alert on it.
func mboxlist(stdout, stderr io.Writer, args []string) int {
	fs, addr := adminFlags("node mboxlist", stderr)
	warn := fs.Bool("w", false, "only report the differences; change nothing")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: node mboxlist [-w] [--admin host:port]")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fs.Usage()
		return 2
	}
	method := "POST"
	if *warn {
		method = "GET"
	}
	var res admin.Mboxlist
	if err := call(*addr, method, "/mboxlist", &res); err != nil {
		fmt.Fprintln(stderr, "node mboxlist:", err)
		return 1
	}
	for _, n := range res.Missing {
		fmt.Fprintf(stdout, "missing on the master: %s\n", n)
	}
	for _, n := range res.Stale {
		fmt.Fprintf(stdout, "on the master, not here: %s\n", n)
	}
	for _, n := range res.Conflicts {
		fmt.Fprintf(stdout, "conflict (the master places it on another server; left alone): %s\n", n)
	}
	differ := len(res.Missing)+len(res.Stale) > 0
	switch {
	case !differ:
		fmt.Fprintln(stdout, "the master's list matches this backend")
	case res.Repaired:
		fmt.Fprintf(stdout, "repaired: %d activated, %d deleted on the master\n", len(res.Missing), len(res.Stale))
	default:
		fmt.Fprintln(stdout, "nothing changed (-w)")
		return 1
	}
	return 0
}
