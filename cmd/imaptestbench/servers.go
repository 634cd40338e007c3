package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"time"

	"github.com/rookery/rookery/internal/benchutil"
	"github.com/rookery/rookery/internal/cyrustest"
	"github.com/rookery/rookery/internal/imaptest"
	"github.com/rookery/rookery/internal/rookerytest"
)

// targetKind is what imaptest talks to.
type targetKind int

const (
	rookeryBackend targetKind = iota
	rookeryFrontend
	cyrusBackend
)

// targetNames are the -targets names.
var targetNames = map[string]targetKind{"backend": rookeryBackend, "frontend": rookeryFrontend, "cyrus": cyrusBackend}

func (k targetKind) String() string {
	switch k {
	case rookeryBackend:
		return "Rookery backend"
	case rookeryFrontend:
		return "Rookery frontend (2 backends)"
	}
	return "Cyrus 3.6 backend"
}

const benchPass = "benchpw"

// servers holds what lives for the whole run: the Cyrus master and
// backend. Rookery topologies are made per run.
type servers struct {
	base               string
	logger             *slog.Logger
	cyrusMaster, cyrus *cyrustest.Instance
	users              int // Cyrus users made so far, one per run
}

// startServers starts a Cyrus mupdate master and backend if targets has
// Cyrus. On error nothing is left running.
func startServers(_ context.Context, logw io.Writer, base string, targets []targetKind) (_ *servers, err error) {
	// Rookery's own complaints under stress would drown the progress;
	// imaptest reports what a client sees.
	s := &servers{base: base, logger: slog.New(slog.NewTextHandler(logw, &slog.HandlerOptions{Level: slog.LevelError}))}
	if !slices.Contains(targets, cyrusBackend) {
		return s, nil
	}
	defer func() {
		if err != nil {
			err = errors.Join(err, s.Close())
		}
	}()
	fmt.Fprintln(logw, "starting a Cyrus mupdate master and a Cyrus backend ...")
	ports := make([]int, 2)
	for i := range ports {
		if ports[i], err = benchutil.FreePort(); err != nil {
			return nil, err
		}
	}
	if s.cyrusMaster, err = cyrustest.Launch(cyrustest.RoleMupdateMaster, cyrustest.Options{MupdatePort: ports[0]}); err != nil {
		return nil, err
	}
	if s.cyrus, err = cyrustest.Launch(cyrustest.RoleBackend, cyrustest.Options{Master: s.cyrusMaster.MupdateAddr(), IMAPPort: ports[1]}); err != nil {
		return nil, err
	}
	return s, nil
}

// stress runs imaptest against a fresh mailbox of target k.
func (s *servers) stress(ctx context.Context, k targetKind, mbox string, clients, secs int) (result, error) {
	var addr, user string
	switch k {
	case cyrusBackend:
		s.users++
		user = fmt.Sprintf("bench%d", s.users)
		if err := s.addCyrusUser(user); err != nil {
			return result{}, err
		}
		addr = s.cyrus.IMAPAddr()
	default:
		kind := rookerytest.Backend
		if k == rookeryFrontend {
			kind = rookerytest.Murder
		}
		user = "bench"
		top, err := rookerytest.Start(ctx, kind, s.base, s.logger, rookerytest.User{Name: user, Pass: benchPass})
		if err != nil {
			return result{}, err
		}
		defer top.Close()
		addr = top.IMAPAddr
	}
	res, err := imaptest.Run(ctx, imaptest.Config{
		Addr: addr, User: user, Pass: benchPass, Mbox: mbox, Clients: clients, Secs: secs,
		// imaptest waits up to 30 s for clients after the run.
		Timeout: time.Duration(secs+60) * time.Second,
	})
	// A run killed at its timeout still counts (its table row says it did
	// not finish); one that never ran, or was interrupted, does not.
	if err != nil && (ctx.Err() != nil || res.Output == "") {
		return result{}, err
	}
	return result{target: k, clients: clients, res: res}, nil
}

// addCyrusUser adds a SASL user with an INBOX to the Cyrus backend.
func (s *servers) addCyrusUser(user string) error {
	return s.cyrus.SetUser(user, benchPass, true)
}

// Close stops the Cyrus backend and master and removes their data.
func (s *servers) Close() error {
	var errs []error
	if s.cyrus != nil {
		errs = append(errs, s.cyrus.Close())
	}
	if s.cyrusMaster != nil {
		errs = append(errs, s.cyrusMaster.Close())
	}
	return errors.Join(errs...)
}
