// Command node runs one Rookery node; which roles it plays is set by
// --roles (or "roles:" in the config file).
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/rookery/rookery/node"
)

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	if len(args) > 0 {
		switch args[0] {
		case "status":
			return statusCommand(args[1:])
		case "where":
			return whereCommand(args[1:])
		}
	}
	fs := flag.NewFlagSet("node", flag.ContinueOnError)
	configFile := fs.String("config", "", "imapd.conf-style file (key: value); flags win over it")
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
	flagVar("users", "users", "DATA/users", "users file: one name:{SCHEME}secret per line ({PLAIN}, {BCRYPT})")
	flagVar("admins", "admins", "", "space-separated admin users (admins)")
	flagVar("password-check", "password_check", "users", "how a frontend checks passwords, in order: users (the users file), backend (the user's INBOX backend)")
	flagVar("log-level", "log_level", "info", "debug, info, warn or error")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "node: unexpected arguments: %s\n", strings.Join(fs.Args(), " "))
		return 2
	}

	cfg := def
	var problems []string
	var unknown []string
	if *configFile != "" {
		kv, err := node.ReadConfigFile(*configFile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "node:", err)
			return 2
		}
		u, err := cfg.Apply(kv)
		unknown = u
		problems = appendProblems(problems, err)
	}
	_, err := cfg.Apply(set)
	problems = appendProblems(problems, err)
	problems = appendProblems(problems, cfg.Validate())
	if len(problems) > 0 {
		fmt.Fprintln(os.Stderr, (&node.ConfigError{Problems: problems}).Error())
		return 2
	}

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: cfg.LogLevel}))
	if len(unknown) > 0 {
		logger.Warn("ignoring config options this node does not use", "file", *configFile, "options", unknown)
	}
	// Before Start, so a signal that comes while it runs is not fatal.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	n, err := node.Start(cfg, logger)
	if err != nil {
		logger.Error("node failed to start", "err", err)
		return 1
	}
	s := <-sig
	logger.Info("shutting down", "signal", s.String())
	if err := n.Close(); err != nil {
		logger.Error("shutdown", "err", err)
		return 1
	}
	return 0
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
