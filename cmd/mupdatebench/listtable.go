package main

import (
	"fmt"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
)

// printListTable prints the -list figures of every size: the latencies
// with their ratios, then the set-up and memory figures, then what each
// frontend listed as \Noselect.
func printListTable(w io.Writer, all []*listResults) {
	ms := func(ds []time.Duration, q float64) string {
		return fmt.Sprintf("%.3f", benchutil.Ms(benchutil.Percentile(ds, q)))
	}
	ratio := func(c, r []time.Duration) string {
		// Three significant digits: a ratio may be far below 1.
		return fmt.Sprintf("%.3gx", float64(benchutil.Percentile(c, 0.5))/float64(benchutil.Percentile(r, 0.5)))
	}
	rows := [][]string{{"entries", "command", "Rookery p50", "p99", "Cyrus racl p50", "p99", "Cyrus p50", "p99",
		"racl/Rookery", "Cyrus/Rookery", "runs"}}
	for _, r := range all {
		for i, lc := range listCommands {
			t := r.Times[i]
			rows = append(rows, []string{strconv.Itoa(r.Entries), lc.Cmd,
				ms(t[feRookery], 0.5), ms(t[feRookery], 0.99),
				ms(t[feCyrusRACL], 0.5), ms(t[feCyrusRACL], 0.99),
				ms(t[feCyrus], 0.5), ms(t[feCyrus], 0.99),
				ratio(t[feCyrusRACL], t[feRookery]), ratio(t[feCyrus], t[feRookery]),
				fmt.Sprintf("%d/%d/%d", len(t[feRookery]), len(t[feCyrusRACL]), len(t[feCyrus]))})
		}
	}
	writeColumns(w, rows)
	fmt.Fprintln(w, "\nlatencies in ms, from sending the command to its tagged OK, as alice on a connection logged in before;")
	fmt.Fprintln(w, "  ratios are Cyrus p50 / Rookery p50: above 1 means Rookery is faster. runs: Rookery/racl/default samples.")
	fmt.Fprintf(w, "alice sees %d mailboxes: her INBOX, %d subfolders, and %d filler mailboxes of others shared with her or anyone;\n",
		len(aliceSees()), ownFolders, len(sharedWith))
	fmt.Fprintf(w, "  entries: every mailbox on the master, %d per filler user. LSUB is answered by alice's backend (a Rookery one)\n", perUser)
	fmt.Fprintln(w, "  behind each frontend; she is subscribed to all she sees.")

	fmt.Fprintln(w)
	mb := func(b uint64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }
	sec := func(d time.Duration) string { return fmt.Sprintf("%.2f", d.Seconds()) }
	rows = [][]string{{"entries", "fill (s)", "fill (/s)", "sync Rookery (s)", "sync racl (s)", "sync Cyrus (s)",
		"Go heap (MB)", "RSS (MB)", "Cyrus racl PSS (MB)", "Cyrus PSS (MB)"}}
	for _, r := range all {
		rows = append(rows, []string{strconv.Itoa(r.Entries), sec(r.Fill), fmt.Sprintf("%.0f", rate(r.Filled, r.Fill)),
			sec(r.Sync[feRookery]), sec(r.Sync[feCyrusRACL]), sec(r.Sync[feCyrus]),
			mb(r.Heap), mb(r.RSS), mb(total(r.Cyrus[feCyrusRACL])), mb(total(r.Cyrus[feCyrus]))})
	}
	writeColumns(w, rows)
	fmt.Fprintln(w, "\nfill: the master loaded by pipelined ACTIVATE. sync: from a frontend's start until its copy of the list holds")
	fmt.Fprintln(w, "  every entry (Cyrus: until its mupdate slave greets, which it does after its first sync, and FINDs the last one).")
	fmt.Fprintln(w, "Go heap: in use after a GC in this process, which holds the master, alice's backend and the Rookery frontend;")
	fmt.Fprintln(w, "  RSS: this process's resident size. Cyrus PSS: the frontend's processes' proportional set size, so pages")
	fmt.Fprintln(w, "  they share (such as mailboxes.db) count once, measured after the runs (by process, PSS and RSS):")
	for _, r := range all {
		for _, fe := range []int{feCyrusRACL, feCyrus} {
			fmt.Fprintf(w, "  [%d] %s: %s\n", r.Entries, frontendNames[fe], describeMem(r.Cyrus[fe]))
		}
	}

	fmt.Fprintln(w, "\\Noselect names listed (the frontends must agree on every name):")
	for _, r := range all {
		for i, lc := range listCommands {
			var parts []string
			for fe := range nFrontends {
				if ns := noselectNames(r.Seen[i][fe]); len(ns) > 0 {
					parts = append(parts, fmt.Sprintf("%s %s", frontendNames[fe], strings.Join(ns, " ")))
				}
			}
			if len(parts) > 0 {
				fmt.Fprintf(w, "  [%d] %s: %s\n", r.Entries, lc.Cmd, strings.Join(parts, "; "))
			}
		}
	}
}

func total(m map[string]procMem) uint64 {
	var t uint64
	for _, p := range m {
		t += p.PSS
	}
	return t
}

// describeMem lists an instance's memory by process name.
func describeMem(m map[string]procMem) string {
	if len(m) == 0 {
		return "unknown (no /proc)"
	}
	var parts []string
	for _, name := range slices.Sorted(maps.Keys(m)) {
		p := m[name]
		parts = append(parts, fmt.Sprintf("%s x%d %.1f MB (RSS %.1f)", name, p.Procs, float64(p.PSS)/(1<<20), float64(p.RSS)/(1<<20)))
	}
	return strings.Join(parts, ", ")
}

// writeColumns prints rows as an aligned table, the first row as its
// header; the first two columns are left-aligned, the rest right-aligned.
func writeColumns(w io.Writer, rows [][]string) {
	width := make([]int, len(rows[0]))
	for _, row := range rows {
		for i, s := range row {
			width[i] = max(width[i], len(s))
		}
	}
	for n, row := range rows {
		cells := make([]string, len(row))
		for i, s := range row {
			if i < 2 {
				cells[i] = fmt.Sprintf("%-*s", width[i], s)
			} else {
				cells[i] = fmt.Sprintf("%*s", width[i], s)
			}
		}
		fmt.Fprintln(w, strings.Join(cells, " | "))
		if n == 0 {
			dashes := make([]string, len(width))
			for i, wd := range width {
				dashes[i] = strings.Repeat("-", wd)
			}
			fmt.Fprintln(w, strings.Join(dashes, "-|-"))
		}
	}
}
