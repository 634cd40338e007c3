// Command node runs one Rookery node; which roles it plays is set by
// --roles (or "roles:" in the config file).
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"
	"time"

	"github.com/rookery/rookery/internal/loglimit"
	"github.com/rookery/rookery/node"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

const usageHead = `Usage:
  node [flags]                      run a node with the flags below
  node status [--admin H:P]         members, roles, health, master, replica lag
  node where MAILBOX [--admin H:P]  a mailbox's entry on the master and here, its backend, up or not
  node check-config FILE            parse and validate a config file as a start would;
                                    exit 0: it would start, 1: problems (listed), 2: unreadable
  node passwd [-scheme S]           hash a password (asked twice, or one line on stdin)
                                    for the users file; S: ARGON2ID (default), BLF-CRYPT,
                                    SHA512-CRYPT, SHA256-CRYPT
  node mboxlist [-w] [--admin H:P]  a backend makes the master's list match its mailboxes
                                    (Cyrus's ctl_mboxlist -m); -w only reports (-mw)
  node --version                    version, VCS revision and Go version

Signals: SIGINT and SIGTERM stop the node; SIGHUP reloads the users file and
the TLS certificate and re-reads the config file, logging what changed and
what needs a restart.

Flags:
`

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return status(stdout, stderr, args[1:])
		case "where":
			return where(stdout, stderr, args[1:])
		case "check-config":
			return checkConfig(stdout, stderr, args[1:])
		case "passwd":
			return passwd(os.Stdin, stdout, stderr, args[1:])
		case "mboxlist":
			return mboxlist(stdout, stderr, args[1:])
		}
	}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), usageHead)
		fs.PrintDefaults()
	}
	configFile := fs.String("config", "", "imapd.conf-style file (key: value); flags win over it")
	version := fs.Bool("version", false, "print the version and exit")
	def := node.DefaultConfig()
	// Flags are collected as key/values so they go through the same
	// parsing and validation as the file, and only the ones given override it.
	set := map[string]string{}
	flagVar := func(name, key, value, usage string) {
		fs.Func(name, fmt.Sprintf("%s (default %q)", usage, value), func(v string) error {
			set[key] = v
			return nil
		})
	}
	flagVar("name", "servername", def.ServerName, "node and server name (servername)")
	flagVar("data", "data", def.DataDir, "data folder")
	flagVar("roles", "roles", "all", "comma-separated roles: master, replica, backend, or all (= master,backend)")
	flagVar("imap", "imap_listen", def.IMAPListen, "IMAP listen address; empty turns it off")
	flagVar("pop3", "pop3_listen", def.POP3Listen, "POP3 listen address (backend); empty turns it off")
	flagVar("lmtp", "lmtp_listen", def.LMTPListen, "LMTP listen address (backend); empty turns it off")
	flagVar("master", "mupdate_server", "", "the master a replica follows or a backend pushes to, host:port (mupdate_server)")
	flagVar("mupdate", "mupdate_listen", def.MUPDATEListen, "MUPDATE listen address; empty turns it off")
	flagVar("gossip", "gossip_listen", "", "gossip address host:port; empty: no cluster")
	flagVar("join", "gossip_join", "", "comma-separated gossip addresses of members to join")
	flagVar("cluster-key", "cluster_key_file", "", "file holding the cluster key (16, 24 or 32 bytes, hex or base64)")
	flagVar("admin", "admin_listen", def.AdminListen, "HTTP admin address (/metrics, /status, /where); empty turns it off")
	flagVar("users", "users", "DATA/users", "users file: one name:{SCHEME}secret per line (see node passwd)")
	flagVar("admins", "admins", "", "space-separated admin users (admins)")
	flagVar("password-check", "password_check", "users", "how a frontend checks passwords, in order: users (the users file), backend (the user's INBOX backend)")
	flagVar("log-level", "log_level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "node: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}
	if *version {
		fmt.Fprint(stdout, versionText())
		return 0
	}

	ld, err := loadConfig(*configFile, set)
	if err != nil {
		var ce *node.ConfigError
		if !errors.As(err, &ce) {
			fmt.Fprintln(stderr, "node:", err)
		} else {
			fmt.Fprintln(stderr, ce.Error())
		}
		return 2
	}

	level := new(slog.LevelVar)
	level.Set(ld.cfg.LogLevel)
	logger := slog.New(loglimit.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level})))
	warnUnknown(logger, *configFile, ld.unknown)
	// Before Start, so a signal that comes while it runs is not fatal.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sig)
	n, err := node.Start(ld.cfg, logger)
	if err != nil {
		logger.Error("node failed to start", "err", err)
		return 1
	}
	r := &reloader{n: n, log: logger, level: level, file: *configFile, flags: set, running: ld.kv}
	for s := range sig {
		if s == syscall.SIGHUP {
			r.reload()
			continue
		}
		logger.Info("shutting down", "signal", s.String())
		break
	}
	return shutdown(n, logger, sig, shutdownWait)
}

// shutdownWait bounds a stop: each store's close is bounded, but a
// session or actor stuck on a disk gone bad must not keep the process.
const shutdownWait = 30 * time.Second

// shutdown closes n, giving up after wait or at a second signal.
func shutdown(n *node.Node, logger *slog.Logger, sig <-chan os.Signal, wait time.Duration) int {
	done := make(chan error, 1)
	go func() { done <- n.Close() }()
	t := time.NewTimer(wait)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				logger.Error("shutdown", "err", err)
				return 1
			}
			return 0
		case <-t.C:
			logger.Error("shutdown did not finish in time; exiting anyway", "wait", wait)
			return 1
		case s := <-sig:
			if s == syscall.SIGHUP {
				continue
			}
			logger.Error("second signal during shutdown; exiting at once", "signal", s.String())
			return 1
		}
	}
}

// loaded is a configuration as a start builds it.
type loaded struct {
	cfg node.Config
	// kv is the file's key/values with the flags' over them: what a reload
	// compares to tell which options changed.
	kv map[string]string
	// unknown are the file's keys this node does not use.
	unknown []string
}

// loadConfig builds the configuration from the defaults, the file (if
// any) and the flags' key/values over it. Every problem comes back at
// once in a *node.ConfigError; a file that cannot be read is another
// error.
func loadConfig(file string, flags map[string]string) (loaded, error) {
	ld := loaded{cfg: node.DefaultConfig(), kv: map[string]string{}}
	var problems []string
	if file != "" {
		kv, err := node.ReadConfigFile(file)
		var ce *node.ConfigError
		if errors.As(err, &ce) {
			problems = append(problems, ce.Problems...)
		} else if err != nil {
			return ld, err
		}
		ld.unknown, err = ld.cfg.Apply(kv)
		problems = appendProblems(problems, err)
		for k, v := range kv {
			ld.kv[k] = v
		}
	}
	_, err := ld.cfg.Apply(flags)
	problems = appendProblems(problems, err)
	for k, v := range flags {
		ld.kv[k] = v
	}
	problems = appendProblems(problems, ld.cfg.Validate())
	if len(problems) > 0 {
		return ld, &node.ConfigError{Problems: problems}
	}
	return ld, nil
}

// unknownHints pairs each unknown key that is close to a known one with
// that one, as "imap_lissten -> imap_listen".
func unknownHints(unknown []string) []string {
	var hints []string
	for _, k := range unknown {
		if s := node.SuggestKey(k); s != "" {
			hints = append(hints, k+" -> "+s)
		}
	}
	return hints
}

func warnUnknown(logger *slog.Logger, file string, unknown []string) {
	if len(unknown) == 0 {
		return
	}
	attrs := []any{"file", file, "options", unknown}
	if hints := unknownHints(unknown); len(hints) > 0 {
		attrs = append(attrs, "did_you_mean", strings.Join(hints, ", "))
	}
	logger.Warn("ignoring config options this node does not use", attrs...)
}

func appendProblems(problems []string, err error) []string {
	if err == nil {
		return problems
	}
	var ce *node.ConfigError
	if errors.As(err, &ce) {
		return append(problems, ce.Problems...)
	}
	return append(problems, err.Error())
}

// versionText is what --version prints: the release, then what the Go
// toolchain stamped into the binary (module version, VCS revision).
func versionText() string {
	var b strings.Builder
	fmt.Fprintf(&b, "rookery node %s\n", node.Version)
	goVersion := runtime.Version()
	if bi, ok := debug.ReadBuildInfo(); ok {
		fmt.Fprintf(&b, "module %s %s\n", bi.Main.Path, bi.Main.Version)
		vcs := map[string]string{}
		for _, s := range bi.Settings {
			vcs[s.Key] = s.Value
		}
		if rev := vcs["vcs.revision"]; rev != "" {
			fmt.Fprintf(&b, "%s %s %s", vcs["vcs"], rev, vcs["vcs.time"])
			if vcs["vcs.modified"] == "true" {
				b.WriteString(" (modified)")
			}
			b.WriteString("\n")
		}
		goVersion = bi.GoVersion
	}
	fmt.Fprintf(&b, "%s %s/%s\n", goVersion, runtime.GOOS, runtime.GOARCH)
	return b.String()
}
