package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/rookery/rookery/listeners/admin"
)

// adminTimeout bounds one question to a node's admin listener; /where asks
// the master and dials a backend, each with timeouts of their own.
const adminTimeout = 30 * time.Second

// status is "node status [--admin host:port]": members, roles, health,
// master and replica state, as the node at --admin sees them.
func status(stdout, stderr io.Writer, args []string) int {
	fs, addr := adminFlags("node status", stderr)
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node status: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	var st admin.Status
	if err := fetch(*addr, "/status", &st); err != nil {
		fmt.Fprintln(stderr, "node status:", err)
		return 1
	}
	printStatus(stdout, &st)
	return 0
}

func printStatus(out io.Writer, st *admin.Status) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "node\t%s\n", st.Node)
	fmt.Fprintf(w, "roles\t%s\n", strings.Join(st.Roles, ", "))
	if st.Cluster != "" {
		fmt.Fprintf(w, "cluster\t%s\n", st.Cluster)
	}
	if st.Version != "" {
		fmt.Fprintf(w, "version\t%s\n", st.Version)
	}
	fmt.Fprintf(w, "master\t%s\n", orDash(st.Master))
	fmt.Fprintf(w, "mailboxes\t%d\n", st.Mailboxes)
	if st.Storage != "" {
		fmt.Fprintf(w, "storage\t%s: %s\n", st.Storage, orDash(st.StorageError))
	}
	if r := st.Replica; r != nil {
		state := "not connected"
		if r.Connected {
			state = "connected"
		}
		fmt.Fprintf(w, "replica\t%s to %s, applied seq %d, lag %.1fs, last sync %s\n",
			state, r.Master, r.AppliedSeq, r.LagSeconds, ago(r.LastSync))
		if r.LastError != "" {
			fmt.Fprintf(w, "\tlast error: %s\n", r.LastError)
		}
	}
	w.Flush()
	if len(st.Members) == 0 {
		fmt.Fprintln(out, "\nno gossip members")
		return
	}
	fmt.Fprintln(out)
	w = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "MEMBER\tHEALTH\tSINCE\tROLES\tGOSSIP\tMUPDATE\tIMAP\tPOP3\tLMTP\tVERSION")
	for _, m := range st.Members {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.Name, m.Health, ago(m.Since),
			orDash(strings.Join(m.Roles, ",")), m.Addr, orDash(m.MUPDATE), orDash(m.IMAP), orDash(m.POP3), orDash(m.LMTP), orDash(m.Version))
	}
	w.Flush()
}

// where is "node where MAILBOX [--admin host:port]": the mailbox's entry
// on the master and in the node's list, its backend and whether that is
// up. It exits 1 when neither list has the mailbox.
func where(stdout, stderr io.Writer, args []string) int {
	fs, addr := adminFlags("node where", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "usage: node where MAILBOX [--admin host:port]")
		fs.PrintDefaults()
	}
	// Flags may come before or after the mailbox name.
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var names []string
	for fs.NArg() > 0 {
		names = append(names, fs.Arg(0))
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return 2
		}
	}
	if len(names) != 1 {
		fs.Usage()
		return 2
	}
	var wh admin.Where
	if err := fetch(*addr, "/where?mailbox="+url.QueryEscape(names[0]), &wh); err != nil {
		fmt.Fprintln(stderr, "node where:", err)
		return 1
	}
	printWhere(stdout, &wh)
	if wh.Master == nil && wh.Local == nil {
		return 1
	}
	return 0
}

func printWhere(out io.Writer, wh *admin.Where) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	defer w.Flush()
	fmt.Fprintf(w, "mailbox\t%s\n", wh.Mailbox)
	asked := ""
	if wh.MasterAddr != "" {
		asked = " (master at " + wh.MasterAddr + ")"
	}
	switch {
	case wh.MasterError != "":
		fmt.Fprintf(w, "master\tunknown: %s%s\n", wh.MasterError, asked)
	default:
		fmt.Fprintf(w, "master\t%s%s\n", entry(wh.Master), asked)
	}
	if wh.LocalError != "" {
		fmt.Fprintf(w, "this node\tunknown: %s\n", wh.LocalError)
	} else {
		fmt.Fprintf(w, "this node\t%s\n", entry(wh.Local))
	}
	if wh.Backend == "" {
		return
	}
	state := "up"
	if !wh.BackendUp {
		state = "DOWN"
		if wh.BackendError != "" {
			state += " (" + wh.BackendError + ")"
		}
	}
	fmt.Fprintf(w, "backend\t%s at %s: %s\n", wh.Backend, orDash(wh.BackendAddr), state)
}

func entry(e *admin.Entry) string {
	if e == nil {
		return "no entry"
	}
	return e.Kind + " " + e.Location
}

func adminFlags(name string, stderr io.Writer) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("admin", admin.DefaultAddr, "the node's admin listener, host:port")
	return fs, addr
}

// fetch GETs path from the admin listener at addr (host:port or a URL)
// and decodes its JSON answer into v.
func fetch(addr, path string, v any) error { return call(addr, "GET", path, v) }

// call is fetch with another method.
func call(addr, method, path string, v any) error {
	base := addr
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	ctx, cancel := context.WithTimeout(context.Background(), adminTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, strings.TrimSuffix(base, "/")+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: %s: %s", addr, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: bad answer: %w", addr, err)
	}
	return nil
}

func ago(t time.Time) string {
	if t.IsZero() {
		return "never"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
