// Command cyrusctl starts and stops real Cyrus 3.6 instances for scripts,
// such as the example topologies, through the cyrustest package. An
// instance lives in the directory it is given and outlives cyrusctl.
//
//	cyrusctl start ROLE DIR [flags]       prints the instance as KEY=VALUE lines
//	cyrusctl stop DIR...                  stops every process of each instance
//	cyrusctl adduser DIR USER PASS [-inbox]
//	cyrusctl sync DIR                     a frontend's slave catches up now
//	cyrusctl tool DIR CYRUS_TOOL [ARGS...]
//
// ROLE is mupdate-master, backend or frontend. It needs root and the
// packages of install-cyrus.sh.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/rookery/rookery/internal/cyrustest"
)

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "cyrusctl:", err)
		os.Exit(1)
	}
}

var errUsage = errors.New(`usage:
  cyrusctl start ROLE DIR [flags]
  cyrusctl stop DIR...
  cyrusctl adduser DIR USER PASS [-inbox]
  cyrusctl sync DIR
  cyrusctl tool DIR CYRUS_TOOL [ARGS...]`)

func run(args []string, out io.Writer) error {
	if len(args) == 0 {
		return errUsage
	}
	switch verb, args := args[0], args[1:]; verb {
	case "start":
		return start(args, out)
	case "stop":
		var errs []error
		for _, dir := range args {
			errs = append(errs, cyrustest.StopDir(dir))
		}
		return errors.Join(errs...)
	case "adduser":
		fs := flag.NewFlagSet("adduser", flag.ContinueOnError)
		inbox := fs.Bool("inbox", false, "also create the INBOX (backends)")
		if len(args) < 3 {
			return errUsage
		}
		if err := fs.Parse(args[3:]); err != nil {
			return err
		}
		i, err := cyrustest.Open(args[0])
		if err != nil {
			return err
		}
		return i.SetUser(args[1], args[2], *inbox)
	case "sync":
		if len(args) != 1 {
			return errUsage
		}
		i, err := cyrustest.Open(args[0])
		if err != nil {
			return err
		}
		return i.SyncNow()
	case "tool":
		if len(args) < 2 {
			return errUsage
		}
		i, err := cyrustest.Open(args[0])
		if err != nil {
			return err
		}
		s, err := i.RunTool(args[1], args[2:]...)
		fmt.Fprint(out, s)
		return err
	}
	return errUsage
}

// confFlag collects repeated -conf KEY=VALUE.
type confFlag map[string]string

func (c confFlag) String() string { return "" }

func (c confFlag) Set(kv string) error {
	k, v, ok := strings.Cut(kv, "=")
	if !ok {
		return fmt.Errorf("-conf wants KEY=VALUE, got %q", kv)
	}
	c[k] = v
	return nil
}

func start(args []string, out io.Writer) error {
	if len(args) < 2 {
		return errUsage
	}
	role, dir := args[0], args[1]
	var o cyrustest.Options
	var serverlist string
	o.Conf = confFlag{}
	fs := flag.NewFlagSet("start", flag.ContinueOnError)
	fs.StringVar(&o.Addr, "addr", "", "loopback address to listen on (default 127.0.0.1)")
	fs.StringVar(&o.Master, "master", "", "host:port of the mupdate master (backend, frontend)")
	fs.StringVar(&o.ServerName, "servername", "", "Cyrus servername (default: from address and ports)")
	fs.StringVar(&o.Name, "name", "", "prefix of its log lines (default: DIR's name)")
	fs.IntVar(&o.IMAPPort, "imap-port", 0, "IMAP port (backend, frontend)")
	fs.IntVar(&o.POP3Port, "pop3-port", 0, "POP3 port")
	fs.IntVar(&o.LMTPPort, "lmtp-port", 0, "LMTP port")
	fs.IntVar(&o.MupdatePort, "mupdate-port", 0, "MUPDATE port (mupdate-master; frontend: its slave)")
	fs.StringVar(&serverlist, "serverlist", "", "frontend: space-separated backends for new mailboxes")
	fs.Var(confFlag(o.Conf), "conf", "KEY=VALUE imapd.conf option (repeatable)")
	fs.BoolVar(&o.LMTPPreauth, "lmtp-preauth", false, "TCP lmtpd without LMTP AUTH")
	fs.DurationVar(&o.ReadyTimeout, "timeout", 0, "how long to wait for readiness (default 30s)")
	if err := fs.Parse(args[2:]); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	o.Serverlist = strings.Fields(serverlist)
	i, err := cyrustest.LaunchAt(dir, role, o)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(i.Env)) {
		fmt.Fprintf(out, "%s=%s\n", k, i.Env[k])
	}
	return nil
}
