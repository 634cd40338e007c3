package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/node"
)

// The user whose mailboxes every measurement fills, on both backends.
const (
	benchUser = "bench"
	benchPass = "benchpw"
)

// servers are the two backends under test and what they need.
type servers struct {
	cyrusMaster, cyrus *cyrustest.Instance
	rookery            *node.Node
	// base holds the data of both backends, on one file system.
	base string
	// dir is Rookery's part of base, removed by Close.
	dir string
	// rt and ct reach the two backends as the bench user.
	rt, ct target
	// Versions as the servers report them to IMAP ID.
	rookeryVersion, cyrusVersion string
}

// printHeader writes what a table was measured on: the machine, its load
// before the run, both servers, where their data lives, and the client.
func (s *servers) printHeader(out io.Writer, loadBefore, client string) {
	fmt.Fprintln(out, benchutil.Machine(loadBefore))
	fmt.Fprintf(out, "Rookery: %s (in-process master+backend node)\n", s.rookeryVersion)
	fmt.Fprintf(out, "Cyrus:   %s (backend and mupdate -m master via cyrustest)\n", s.cyrusVersion)
	fmt.Fprintf(out, "data: both backends under %s (%s); client: this process, %s\n\n",
		s.base, benchutil.FSType(s.base), client)
}

// startServers starts a Cyrus mupdate master and a Cyrus backend pushing
// to it, and a Rookery master+backend node, and gives each the bench user
// with an INBOX. On error nothing is left running.
func startServers(ctx context.Context, logw io.Writer, delayedACK bool) (_ *servers, err error) {
	s := &servers{}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	fmt.Fprintln(logw, "starting a Cyrus mupdate master and a Cyrus backend ...")
	ports := make([]int, 3)
	for i := range ports {
		if ports[i], err = benchutil.FreePort(); err != nil {
			return nil, err
		}
	}
	if s.cyrusMaster, err = cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: ports[0]}); err != nil {
		return nil, err
	}
	if s.cyrus, err = cyrustest.Launch(cyrustest.RoleBackend, cyrustest.Options{
		Master: s.cyrusMaster.MupdateAddr(), IMAPPort: ports[1], LMTPPort: ports[2],
	}); err != nil {
		return nil, err
	}
	if err := addCyrusUser(s.cyrus, benchUser, benchPass); err != nil {
		return nil, err
	}

	s.base = filepath.Dir(s.cyrus.Dir)
	if s.dir, err = os.MkdirTemp(s.base, "backendbench-"); err != nil {
		return nil, fmt.Errorf("backendbench: %w", err)
	}
	fmt.Fprintln(logw, "starting the Rookery node ...")
	logger := slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if s.rookery, err = startRookery(s.dir, logger); err != nil {
		return nil, err
	}

	s.rt = target{Name: "Rookery", IMAP: s.rookery.IMAPAddr(), User: benchUser, Pass: benchPass, DelayedACK: delayedACK,
		LMTP: s.rookery.LMTPAddr(), LMTPUser: cyrustest.AdminUser, LMTPPass: cyrustest.AdminPass}
	s.ct = target{Name: "Cyrus", IMAP: s.cyrus.IMAPAddr(), User: benchUser, Pass: benchPass, DelayedACK: delayedACK,
		LMTP: net.JoinHostPort(s.cyrus.Addr, strconv.Itoa(s.cyrus.LMTPPort)), LMTPUser: cyrustest.AdminUser, LMTPPass: cyrustest.AdminPass}
	for _, v := range []struct {
		tg      target
		version *string
	}{{s.rt, &s.rookeryVersion}, {s.ct, &s.cyrusVersion}} {
		if err := createUser(ctx, v.tg, cyrustest.AdminUser, cyrustest.AdminPass); err != nil {
			return nil, err
		}
		if *v.version, err = serverVersion(ctx, v.tg); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// Close stops both backends and the Cyrus master, and removes their data.
func (s *servers) Close() error {
	var errs []error
	if s.rookery != nil {
		if err := s.rookery.Close(); err != nil {
			errs = append(errs, fmt.Errorf("backendbench: closing rookery: %w", err))
		}
	}
	if s.dir != "" {
		if err := os.RemoveAll(s.dir); err != nil {
			errs = append(errs, fmt.Errorf("backendbench: %w", err))
		}
	}
	if s.cyrus != nil {
		errs = append(errs, s.cyrus.Close())
	}
	if s.cyrusMaster != nil {
		errs = append(errs, s.cyrusMaster.Close())
	}
	return errors.Join(errs...)
}

// startRookery runs a fresh master+backend node with its data in dir and
// IMAP and MUPDATE listeners on loopback (the backend registers its
// mailboxes through the MUPDATE one, as with a remote master). Its users
// are the harness's admin and the bench user.
func startRookery(dir string, logger *slog.Logger) (*node.Node, error) {
	users := filepath.Join(dir, "users")
	content := fmt.Sprintf("%s:{PLAIN}%s\n%s:{PLAIN}%s\n", cyrustest.AdminUser, cyrustest.AdminPass, benchUser, benchPass)
	if err := os.WriteFile(users, []byte(content), 0o600); err != nil {
		return nil, fmt.Errorf("backendbench: %w", err)
	}
	cfg := node.DefaultConfig()
	cfg.ServerName = "rookery.bench"
	cfg.DataDir = filepath.Join(dir, "data")
	cfg.Roles = []node.Role{node.RoleMaster, node.RoleBackend}
	cfg.MUPDATEListen = "127.0.0.1:0"
	cfg.IMAPListen = "127.0.0.1:0"
	cfg.LMTPListen = "127.0.0.1:0"
	cfg.AdminListen, cfg.GossipListen, cfg.POP3Listen = "", "", ""
	cfg.UsersFile = users
	cfg.Admins = []string{cyrustest.AdminUser}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("backendbench: %w", err)
	}
	n, err := node.Start(cfg, logger)
	if err != nil {
		return nil, fmt.Errorf("backendbench: starting rookery: %w", err)
	}
	return n, nil
}

// addCyrusUser adds a SASL user to a Cyrus instance; the INBOX comes
// later, made over IMAP as on Rookery.
func addCyrusUser(i *cyrustest.Instance, user, pass string) error {
	return i.SetUser(user, pass, false)
}
