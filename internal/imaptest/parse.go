package imaptest

import (
	"bufio"
	"bytes"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
)

// Result is what one imaptest run reported.
type Result struct {
	// Output is everything imaptest wrote, stdout and stderr together.
	Output string
	// ExitCode is imaptest's exit status (2 when a scripted test failed).
	ExitCode int

	// Scripted tests. Summary is false when the summary lines were never
	// printed (imaptest died or was killed before the end).
	Summary                  bool
	Groups, Failed, Skipped  int
	BaseFailed, BaseCommands int
	ExtFailed, ExtCommands   int
	FailedGroups             []string // names of the groups that failed, sorted, each once
	Failures                 []string // every "*** Test ..." report, with its detail lines

	// Errors are imaptest's "Error:", "Fatal:" and "Panic:" lines: protocol
	// violations and state inconsistencies it saw (stress and scripted).
	Errors []string
	// Stalls are the " - N stalled for S secs in ..." lines (a client that
	// got no answer for more than 15 s) and imaptest's note that clients
	// still had not finished 30 s after the end of the run.
	Stalls []string

	// Stress totals: operation name (imaptest's short name, e.g. "Fetc")
	// to how many were done over the whole run. Nil when no "Totals:"
	// table was printed.
	Totals map[string]int
	// Ops are the short names in imaptest's column order.
	Ops []string
}

// TotalOps is the sum of all stress totals.
func (r *Result) TotalOps() int {
	n := 0
	for _, v := range r.Totals {
		n += v
	}
	return n
}

var (
	summaryRe = regexp.MustCompile(`^(\d+) test groups: (\d+) failed, (\d+) skipped`)
	baseRe    = regexp.MustCompile(`^base protocol: (\d+)/(\d+) individual commands failed`)
	extRe     = regexp.MustCompile(`^extensions: (\d+)/(\d+) individual commands failed`)
	// imaptest's test_fail: "*** Test NAME command I/N (line L)" or
	// "*** Test NAME initialization failed: ...".
	failRe  = regexp.MustCompile(`^\*\*\* Test (\S+) (?:command \d+/\d+|initialization failed)`)
	stallRe = regexp.MustCompile(`^ - \d+ stalled for \d+ secs in |Second timeout triggered while trying to stop`)
	// Dovecot's log prefixes for i_error, i_fatal and i_panic.
	errorPrefixes = []string{"Error: ", "Fatal: ", "Panic: "}
)

// Parse reads imaptest's output. It never fails: what it cannot recognise
// is left in Output, and a run that printed no summary or totals says so by
// Summary false and Totals nil.
func Parse(out []byte) *Result {
	r := &Result{Output: string(out)}
	var lines []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 0, 64*1024), 16*1024*1024)
	for sc.Scan() {
		// A terminal gets bold escapes around the ms/cmd line; a pipe
		// does not, but output captured elsewhere might.
		lines = append(lines, strings.NewReplacer("\x1b[1m", "", "\x1b[0m", "").Replace(sc.Text()))
	}
	failed := map[string]bool{}
	for i := 0; i < len(lines); i++ {
		line := lines[i]
		if m := summaryRe.FindStringSubmatch(line); m != nil {
			r.Summary = true
			r.Groups, r.Failed, r.Skipped = atoi(m[1]), atoi(m[2]), atoi(m[3])
			continue
		}
		if m := baseRe.FindStringSubmatch(line); m != nil {
			r.BaseFailed, r.BaseCommands = atoi(m[1]), atoi(m[2])
			continue
		}
		if m := extRe.FindStringSubmatch(line); m != nil {
			r.ExtFailed, r.ExtCommands = atoi(m[1]), atoi(m[2])
			continue
		}
		if m := failRe.FindStringSubmatch(line); m != nil {
			failed[m[1]] = true
			report := line
			for i+1 < len(lines) && strings.HasPrefix(lines[i+1], " - ") {
				i++
				report += "\n" + lines[i]
			}
			r.Failures = append(r.Failures, report)
			continue
		}
		if stallRe.MatchString(line) {
			r.Stalls = append(r.Stalls, strings.TrimSpace(line))
			continue
		}
		if slices.ContainsFunc(errorPrefixes, func(p string) bool { return strings.HasPrefix(line, p) }) {
			r.Errors = append(r.Errors, line)
			continue
		}
		if line == "Totals:" {
			r.Ops, r.Totals = parseTotals(lines[i+1:])
		}
	}
	for g := range failed {
		r.FailedGroups = append(r.FailedGroups, g)
	}
	slices.Sort(r.FailedGroups)
	return r
}

// parseTotals reads the table after "Totals:": a line of short operation
// names, one or two lines of percentages, then the counts.
func parseTotals(lines []string) ([]string, map[string]int) {
	if len(lines) == 0 {
		return nil, nil
	}
	names := strings.Fields(lines[0])
	for _, l := range lines[1:] {
		f := strings.Fields(l)
		if len(f) != len(names) || strings.Contains(l, "%") {
			continue
		}
		totals := make(map[string]int, len(names))
		for j, v := range f {
			n, err := strconv.Atoi(v)
			if err != nil {
				return nil, nil
			}
			totals[names[j]] = n
		}
		return names, totals
	}
	return nil, nil
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}

// clientRe is the client that an imaptest error line names, e.g.
// "alice[12]: ".
var clientRe = regexp.MustCompile(`^\S+\[\d+\]: `)

var digitsRe = regexp.MustCompile(`\d+`)

// ErrorClasses groups the Errors by what they say, without the client,
// the numbers and the quoted response, most frequent first: a run with
// thousands of errors reads as a few lines.
func (r *Result) ErrorClasses() []Count {
	counts := map[string]int{}
	for _, e := range r.Errors {
		_, msg, _ := strings.Cut(e, ": ")
		msg = clientRe.ReplaceAllString(msg, "")
		parts := strings.SplitN(msg, ": ", 3)
		class := parts[0]
		if len(parts) > 1 {
			class += ": " + parts[1]
		}
		if len(class) > 100 {
			class = class[:100] + "..."
		}
		counts[digitsRe.ReplaceAllString(class, "N")]++
	}
	out := make([]Count, 0, len(counts))
	for k, v := range counts {
		out = append(out, Count{k, v})
	}
	slices.SortFunc(out, func(a, b Count) int {
		if a.N != b.N {
			return b.N - a.N
		}
		return strings.Compare(a.What, b.What)
	})
	return out
}

// stalledRe names the client in a stall report.
var stalledRe = regexp.MustCompile(`^- (\d+) stalled for `)

// StalledClients is how many different clients imaptest reported stalled
// (it repeats the report every second while a client stays stalled).
func (r *Result) StalledClients() int {
	ids := map[string]bool{}
	for _, s := range r.Stalls {
		if m := stalledRe.FindStringSubmatch(s); m != nil {
			ids[m[1]] = true
		} else {
			ids[s] = true
		}
	}
	return len(ids)
}

// Count is how often something was seen.
type Count struct {
	What string
	N    int
}

// Report sums a run up in a few lines: the scripted tests' summary with the
// failed groups, or the stress totals with operations per second over secs;
// then the number of Error lines by class and the stalls.
func (r *Result) Report(secs int) string {
	var b strings.Builder
	if r.Summary {
		fmt.Fprintf(&b, "%d test groups: %d failed, %d skipped; base protocol %d/%d commands failed, extensions %d/%d\n",
			r.Groups, r.Failed, r.Skipped, r.BaseFailed, r.BaseCommands, r.ExtFailed, r.ExtCommands)
		if len(r.FailedGroups) > 0 {
			fmt.Fprintf(&b, "failed groups: %s\n", strings.Join(r.FailedGroups, " "))
		}
	}
	if r.Totals != nil {
		fmt.Fprintf(&b, "totals:")
		for _, op := range r.Ops {
			fmt.Fprintf(&b, " %s=%d", op, r.Totals[op])
		}
		fmt.Fprintf(&b, "\n%d operations", r.TotalOps())
		if secs > 0 {
			fmt.Fprintf(&b, ", %.0f ops/s", float64(r.TotalOps())/float64(secs))
		}
		b.WriteString("\n")
	}
	if !r.Summary && r.Totals == nil {
		b.WriteString("no summary and no totals: imaptest did not finish\n")
	}
	fmt.Fprintf(&b, "%d Error lines", len(r.Errors))
	for _, c := range r.ErrorClasses() {
		fmt.Fprintf(&b, "\n  %6d  %s", c.N, c.What)
	}
	if len(r.Stalls) > 0 {
		fmt.Fprintf(&b, "\n%d stalled clients (%d stall reports), first: %s", r.StalledClients(), len(r.Stalls), r.Stalls[0])
	}
	return b.String()
}
